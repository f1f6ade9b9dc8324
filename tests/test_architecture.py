"""The package's layout rules (ARCHITECTURE.md): one subpackage per row, imports only to the
same or a lower row (module level, inside functions and in ``__main__`` blocks alike), no import
cycle, nothing but the command shims at the top of ``kgan/``, absl.flags/absl.app only in the
CLIs, every module opens with a docstring, no module near 500 lines, every registered layer
survives a safe_mode round trip."""

import ast
import os

import tensorflow as tf
from helpers import LAYER_EXAMPLES, ROOT, kgan_layer_classes, round_trip_layer

PACKAGE = os.path.join(ROOT, "kgan")
FLAG_MODULES_ALLOWED = ("kgan.cli",)
MAX_LINES = 450
# ARCHITECTURE.md's rows, bottom to top: a module may import its own row or a lower one.
ROWS = ("core", "data", "models", "metrics", "training", "serving", "video", "colorization",
        "interop", "exporting", "evaluation", "recipes", "benchmarking", "cli")
# The ``python -m kgan.X`` commands: the only modules at the top of kgan/ besides __init__.
COMMANDS = ("bench", "colorize", "convert", "crappify", "demo", "evaluate", "export",
            "train", "translate")


def _modules():
    """{module name: path} for every .py file of the package."""
    modules = {}
    for folder, _, files in os.walk(PACKAGE):
        for name in files:
            if name.endswith(".py"):
                path = os.path.join(folder, name)
                parts = os.path.relpath(path, ROOT)[:-3].split(os.sep)
                if parts[-1] == "__init__":
                    parts = parts[:-1]
                modules[".".join(parts)] = path
    return modules


def _imports(path, module, modules):
    """kgan modules imported by a file (module level, inside functions and in ``__main__``
    blocks alike), and the absl modules it imports."""
    with open(path) as handle:
        tree = ast.parse(handle.read())
    package = module if path.endswith("__init__.py") else module.rpartition(".")[0]
    found, absl = set(), set()
    for node in ast.walk(tree):
        names = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[:len(package.split(".")) - node.level + 1]
                                + ([base] if base else []))
            names = [base] + [f"{base}.{alias.name}" for alias in node.names]
            if base == "absl":
                absl.update(alias.name for alias in node.names)
        for name in names:
            if name.startswith("absl."):
                absl.add(name.split(".")[1])
            if name in modules and name != module:
                found.add(name)
    return found, absl


def _graph():
    modules = _modules()
    return modules, {name: _imports(path, name, modules) for name, path in modules.items()}


def _is_ancestor(package, module):
    return module.startswith(package + ".")


def _row(module):
    """The row index of a kgan module: its subpackage's place in ROWS; the command shims and
    the ``kgan`` package itself (the version, the quiet TensorFlow import and the layer
    registration of ``import kgan``) sit above every row."""
    parts = module.split(".")
    if len(parts) > 1 and parts[1] in ROWS:
        return ROWS.index(parts[1])
    return len(ROWS)


def upward_imports(graph):
    """``[(module, imported module)]`` where the import points to a higher row. Importing the
    root package ``kgan`` (for ``__version__``) is no edge: every kgan import runs it first."""
    return sorted((name, dep) for name, (deps, _) in graph.items() for dep in deps
                  if dep != "kgan" and _row(dep) > _row(name))


class ArchitectureTest(tf.test.TestCase):

    def test_no_import_cycle(self):
        modules, graph = _graph()
        # A package's __init__ importing its own submodules is how packages re-export, and a
        # submodule importing its parent package is the same edge seen from below: only
        # imports between different rooms count.
        edges = {name: {dep for dep in deps if not _is_ancestor(name, dep)
                        and not _is_ancestor(dep, name)}
                 for name, (deps, _) in graph.items()}
        state, cycle = {}, []

        def visit(node, stack):
            state[node] = "open"
            for dep in sorted(edges[node]):
                if state.get(dep) == "open":
                    cycle.append(stack[stack.index(dep):] + [dep] if dep in stack
                                 else stack + [dep])
                elif dep not in state:
                    visit(dep, stack + [dep])
            state[node] = "done"

        for name in sorted(edges):
            if name not in state:
                visit(name, [name])
        self.assertEqual(cycle, [], "import cycles: "
                         + "; ".join(" -> ".join(c) for c in cycle))

    def test_imports_point_to_the_same_or_a_lower_row(self):
        _, graph = _graph()
        self.assertEqual(upward_imports(graph), [])

    def test_the_row_check_sees_function_level_and_main_block_imports(self):
        source = ("def f():\n    from kgan.cli.train import main\n"
                  "if __name__ == '__main__':\n    from kgan.recipes import train\n")
        path = os.path.join(self.get_temp_dir(), "fake.py")
        with open(path, "w") as handle:
            handle.write(source)
        modules = {"kgan.cli.train": "", "kgan.recipes": "", "kgan.core.fake": path}
        deps, _ = _imports(path, "kgan.core.fake", modules)
        self.assertEqual(upward_imports({"kgan.core.fake": (deps, set())}),
                         [("kgan.core.fake", "kgan.cli.train"), ("kgan.core.fake", "kgan.recipes")])

    def test_every_module_lives_in_a_row_and_the_top_holds_only_the_command_shims(self):
        for name in _modules():
            parts = name.split(".")
            if len(parts) == 1:
                continue
            self.assertTrue(parts[1] in ROWS or (len(parts) == 2 and parts[1] in COMMANDS),
                            f"{name} is in no row of ARCHITECTURE.md")
        for command in COMMANDS:
            with open(os.path.join(PACKAGE, command + ".py")) as handle:
                tree = ast.parse(handle.read())
            body = tree.body[1:]  # after the docstring
            self.assertEqual([type(node).__name__ for node in body], ["ImportFrom", "If"],
                             f"kgan/{command}.py holds more than the shim")
            self.assertEqual(body[0].module, f"kgan.cli.{command}")
        with open(os.path.join(PACKAGE, "__init__.py")) as handle:
            tree = ast.parse(handle.read())
        self.assertEqual([type(node).__name__ for node in tree.body],
                         ["Expr", "Assign", "ImportFrom", "Expr", "Try"],
                         "kgan/__init__.py holds the docstring, __version__, the quiet "
                         "TensorFlow import and the layer registration only")
        self.assertEqual(tree.body[1].targets[0].id, "__version__")
        self.assertNotIn("sys", {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)})

    def test_absl_flags_and_app_only_in_the_clis(self):
        _, graph = _graph()
        offenders = {name: sorted(absl & {"flags", "app"}) for name, (_, absl) in graph.items()
                     if absl & {"flags", "app"}
                     and not name.startswith(FLAG_MODULES_ALLOWED)}
        self.assertEqual(offenders, {})

    def test_every_module_says_what_it_is_for_and_stays_small(self):
        for name, path in _modules().items():
            with open(path) as handle:
                text = handle.read()
            self.assertIsNotNone(ast.get_docstring(ast.parse(text)), f"{name} has no docstring")
            self.assertLess(text.count("\n"), MAX_LINES, f"{name} is {text.count(chr(10))} lines")

    def test_every_cli_has_a_python_m_entry_point(self):
        for cli in COMMANDS:
            with open(os.path.join(PACKAGE, cli + ".py")) as handle:
                self.assertIn(f"from kgan.cli.{cli} import main", handle.read(), cli)


class LayerRoundTripTest(tf.test.TestCase):

    def test_every_kgan_layer_round_trips_with_safe_mode(self):
        classes = kgan_layer_classes()
        self.assertGreaterEqual(len(classes), 8)
        for cls in classes:
            with self.subTest(layer=cls.__name__):
                round_trip_layer(self, cls, **LAYER_EXAMPLES.get(cls.__name__, {}))
