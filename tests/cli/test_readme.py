"""Every ``python -m kgan.X`` command in README.md and the guides in docs/ (fenced code blocks
and inline code spans) parses with that command's own flag definitions (flag names, values,
enums, required flags, flagfiles); a failure names the file and line. The README keeps the two
set-up commands CI runs (.ci/run) in its first code block and shows every command once, and
the relative links of README.md and docs/*.md point at files and headings that exist. The
commands that can run offline are run for real elsewhere: the quickstart by .ci/run,
translate / export / evaluate / crappify / bench / train by their CLI tests."""

import glob
import json
import os
import re
import shlex
import subprocess
import sys

import tensorflow as tf
from helpers import ROOT, cli_env

README = f"{ROOT}/README.md"
# The files whose commands are checked: the README and every guide in docs/.
DOCUMENTS = [README] + sorted(glob.glob(f"{ROOT}/docs/*.md"))
# The ``python -m kgan.X`` commands (tests/test_architecture.py's COMMANDS): the README's tour
# shows each of them.
COMMANDS = ("bench", "colorize", "convert", "crappify", "demo", "evaluate", "export",
            "train", "translate")
# The README's first code block: .ci/run runs these two commands (split into steps).
SETUP_COMMANDS = (
    'python3 -m venv .venv && .venv/bin/pip install -e ".[test]" && '
    ".venv/bin/python -m kgan.train --flagfile=configs/quickstart.cfg",
    ".venv/bin/python -m pytest -q tests",
)

# Parses each command line given on stdin as JSON {module: [[source, argv], ...]}; prints the
# failures, each starting with its source (file:line).
_PARSE_SCRIPT = r"""
import importlib, json, sys
from absl import flags
commands = json.load(sys.stdin)
failures = []
for module, entries in commands.items():
    cli = importlib.import_module("kgan.cli." + module)
    before = set(flags.FLAGS)
    cli.define_flags()
    for source, argv in entries:
        if "--help" in argv:  # kgan.cli.common.run_cli answers it before parsing
            continue
        flags.FLAGS.unparse_flags()
        try:
            flags.FLAGS(["kgan." + module] + argv)
        except flags.Error as error:
            failures.append(f"{source}: python -m kgan.{module} {' '.join(argv)}: {error}")
    # Each command defines its own flags; two may share a name (--output_dir, --model).
    for name in set(flags.FLAGS) - before:
        if name in flags.FLAGS:
            delattr(flags.FLAGS, name)
print(json.dumps(failures))
"""


def _command(line):
    """(module, argv) of one ``python -m kgan.X`` command line, or None: comments and
    ``[optional]`` placeholders dropped, only the flags kept."""
    line = re.sub(r"\[[^\]]*\]", "", line.split("#")[0]).strip()
    match = re.search(r"python -m kgan\.([a-z_]+)\b(.*)", line)  # not the placeholder kgan.X
    if not match:
        return None
    return match.group(1), [a for a in shlex.split(match.group(2)) if a.startswith("-")]


def _fenced_and_prose(text):
    """The text's fenced code blocks as (first line number, lines), and its prose: the text
    with every fenced line blanked, so that line numbers stay."""
    blocks, prose, block, inside = [], [], None, False
    for number, line in enumerate(text.splitlines() + ["```"], 1):
        if line.startswith("```"):
            if inside:
                blocks.append(block)
            inside, block = not inside, (number + 1, [])
            prose.append("")
        elif inside:
            block[1].append(line)
            prose.append("")
        else:
            prose.append(line)
    return blocks, "\n".join(prose[:-1])


def document_commands(text):
    """[(line number, module, argv)] of the ``python -m kgan.X`` commands in a markdown text:
    in fenced code blocks (continuation lines joined) and in inline code spans with flags (which
    may run over a line break; a span without flags only names the command)."""
    found = []
    blocks, prose = _fenced_and_prose(text)
    for first, lines in blocks:
        number = first
        for command in "\n".join(lines).replace("\\\n", " \x00").splitlines():
            parsed = _command(command.replace("\x00", ""))
            if parsed:
                found.append((number, *parsed))
            number += 1 + command.count("\x00")
    for match in re.finditer(r"`([^`]+)`", prose):
        if "python -m kgan." in match.group(1):
            parsed = _command(match.group(1).replace("\n", " "))
            if parsed and parsed[1]:  # a bare `python -m kgan.export` names the command
                found.append((prose.count("\n", 0, match.start()) + 1, *parsed))
    return sorted(found)


def readme_commands(text):
    """{module: [argv]} of the ``python -m kgan.X`` commands in a markdown text."""
    commands = {}
    for _, module, argv in document_commands(text):
        commands.setdefault(module, []).append(argv)
    return commands


def documented_commands(paths=DOCUMENTS):
    """{module: [[file:line, argv]]} of the commands in README.md and docs/*.md."""
    commands = {}
    for path in paths:
        with open(path) as handle:
            text = handle.read()
        for number, module, argv in document_commands(text):
            source = f"{os.path.relpath(path, ROOT)}:{number}"
            commands.setdefault(module, []).append([source, argv])
    return commands


def _anchors(path):
    """The heading anchors GitHub gives a markdown file."""
    with open(path) as handle:
        _, prose = _fenced_and_prose(handle.read())
    anchors, seen = set(), {}
    for heading in re.findall(r"^#{1,6} +(.+?) *$", prose, flags=re.M):
        slug = re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-")
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        anchors.add(slug if count == 0 else f"{slug}-{count}")
    return anchors


def broken_links(paths=DOCUMENTS):
    """'file:line: target (why)' for each relative link in the files whose file or heading
    does not exist."""
    broken = []
    for path in paths:
        with open(path) as handle:
            _, prose = _fenced_and_prose(handle.read())
        for match in re.finditer(r"\]\(([^)\s]+)\)", prose):
            target = match.group(1)
            if re.match(r"[a-z]+:", target):  # http:, https:, mailto:
                continue
            where = f"{os.path.relpath(path, ROOT)}:{prose.count(chr(10), 0, match.start()) + 1}"
            name, _, anchor = target.partition("#")
            linked = os.path.normpath(os.path.join(os.path.dirname(path), name)) if name else path
            if not os.path.exists(linked):
                broken.append(f"{where}: {target} (no such file)")
            elif anchor and linked.endswith(".md") and anchor not in _anchors(linked):
                broken.append(f"{where}: {target} (no such heading)")
    return broken


class ReadmeCommandsTest(tf.test.TestCase):

    def test_every_documented_command_parses(self):
        commands = documented_commands()
        self.assertIn("train", commands)
        self.assertIn("translate", commands)
        sources = {source.split(":")[0] for entries in commands.values()
                   for source, _ in entries}
        self.assertIn("README.md", sources)
        self.assertIn("docs/pretrained.md", sources)  # the guides are read too
        self.assertGreaterEqual(len(commands["convert"]), 23)  # the published-models table
        # A deliberately broken line proves the check can fail.
        broken = ["--modle=x", "--input=a", "--output=b"]
        commands["translate"].append(["docs/broken.md:1", broken])
        result = subprocess.run([sys.executable, "-c", _PARSE_SCRIPT], input=json.dumps(commands),
                                capture_output=True, text=True, cwd=ROOT, env=cli_env(),
                                timeout=300)
        self.assertEqual(result.returncode, 0, result.stderr[-3000:])
        failures = json.loads(result.stdout.strip().splitlines()[-1])
        self.assertLen(failures, 1, "\n".join(failures))
        self.assertIn("--modle=x", failures[0])
        self.assertIn("Did you mean: model", failures[0])
        self.assertStartsWith(failures[0], "docs/broken.md:1: ")

    def test_the_readme_shows_every_command_and_the_setup_commands_first(self):
        with open(README) as handle:
            text = handle.read()
        self.assertContainsSubset(COMMANDS, readme_commands(text))
        first_block = "\n".join(_fenced_and_prose(text)[0][0][1])
        for command in SETUP_COMMANDS:
            self.assertIn(command, first_block)

    def test_relative_links_resolve(self):
        self.assertEqual(broken_links(), [])

    def test_the_parser_catches_a_broken_command(self):
        commands = readme_commands("```bash\npython -m kgan.translate --modle=x --input=a "
                                   "--output=b\n```\n")
        self.assertEqual(commands, {"translate": [["--modle=x", "--input=a", "--output=b"]]})

    def test_commands_are_found_in_code_blocks_and_inline_code(self):
        text = ("# Title\n\nRun `python -m kgan.evaluate\n--checkpoint_dir=runs/x` first.\n\n"
                "```bash\npython -m kgan.export --checkpoint_dir=r \\\n    --output_dir=o  # c\n"
                "python -m kgan.bench --steps=2\n```\n")
        self.assertEqual(document_commands(text), [
            (3, "evaluate", ["--checkpoint_dir=runs/x"]),
            (7, "export", ["--checkpoint_dir=r", "--output_dir=o"]),
            (9, "bench", ["--steps=2"])])

    def test_a_broken_link_is_reported(self):
        path = os.path.join(self.get_temp_dir(), "page.md")
        with open(path, "w") as handle:
            handle.write("# Page\n\n## A part\n\n[ok](#a-part) [here](page.md#page)\n"
                         "[gone](missing.md) [nowhere](#no-part)\n```\n[code](x.md)\n```\n")
        self.assertEqual([line.split(": ", 1)[1] for line in broken_links([path])],
                         ["missing.md (no such file)", "#no-part (no such heading)"])
