"""Every ``python -m kgan.X`` command in README.md's code blocks parses with that command's own
flag definitions (flag names, values, enums, required flags, flagfiles). The commands that can
run offline are run for real elsewhere: the quickstart by .ci/run, translate / export /
evaluate / crappify / bench / train by their CLI tests."""

import json
import re
import shlex
import subprocess
import sys

import tensorflow as tf
from helpers import ROOT, cli_env

README = f"{ROOT}/README.md"

# Parses each command line given on stdin as JSON {module: [argv, ...]}; prints the failures.
_PARSE_SCRIPT = r"""
import importlib, json, sys
from absl import flags
commands = json.load(sys.stdin)
failures = []
for module, argvs in commands.items():
    cli = importlib.import_module("kgan.cli." + module)
    before = set(flags.FLAGS)
    cli.define_flags()
    for argv in argvs:
        if "--help" in argv:  # kgan.cli.common.run_cli answers it before parsing
            continue
        flags.FLAGS.unparse_flags()
        try:
            flags.FLAGS(["kgan." + module] + argv)
        except flags.Error as error:
            failures.append(f"python -m kgan.{module} {' '.join(argv)}: {error}")
    # Each command defines its own flags; two may share a name (--output_dir, --model).
    for name in set(flags.FLAGS) - before:
        if name in flags.FLAGS:
            delattr(flags.FLAGS, name)
print(json.dumps(failures))
"""


def readme_commands(text):
    """{module: [argv]} of the ``python -m kgan.X`` lines in the README's fenced code blocks,
    continuation lines joined and ``[optional]`` placeholders dropped."""
    commands, block, inside = {}, [], False
    for line in text.splitlines() + ["```"]:
        if line.startswith("```"):
            if inside:
                for command in "\n".join(block).replace("\\\n", " ").splitlines():
                    command = re.sub(r"\[[^\]]*\]", "", command.split("#")[0]).strip()
                    match = re.search(r"python -m kgan\.(\w+)(.*)", command)
                    if match:
                        argv = [a for a in shlex.split(match.group(2)) if a.startswith("-")]
                        commands.setdefault(match.group(1), []).append(argv)
            inside, block = not inside, []
        elif inside:
            block.append(line)
    return commands


class ReadmeCommandsTest(tf.test.TestCase):

    def test_every_readme_command_parses(self):
        with open(README) as handle:
            commands = readme_commands(handle.read())
        self.assertIn("train", commands)
        self.assertIn("translate", commands)
        # A deliberately broken line proves the check can fail.
        broken = ["--modle=x", "--input=a", "--output=b"]
        commands["translate"].append(broken)
        result = subprocess.run([sys.executable, "-c", _PARSE_SCRIPT], input=json.dumps(commands),
                                capture_output=True, text=True, cwd=ROOT, env=cli_env(),
                                timeout=300)
        self.assertEqual(result.returncode, 0, result.stderr[-3000:])
        failures = json.loads(result.stdout.strip().splitlines()[-1])
        self.assertLen(failures, 1, "\n".join(failures))
        self.assertIn("--modle=x", failures[0])
        self.assertIn("Did you mean: model", failures[0])

    def test_the_parser_catches_a_broken_command(self):
        commands = readme_commands("```bash\npython -m kgan.translate --modle=x --input=a "
                                   "--output=b\n```\n")
        self.assertEqual(commands, {"translate": [["--modle=x", "--input=a", "--output=b"]]})
