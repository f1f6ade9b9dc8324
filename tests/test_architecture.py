"""The package's layout rules (ARCHITECTURE.md): no import cycle, absl.flags/absl.app only in
the CLIs, every module opens with a docstring, no module near 500 lines, every registered
layer survives a safe_mode round trip."""

import ast
import os

import tensorflow as tf

from helpers import LAYER_EXAMPLES, ROOT, kgan_layer_classes, round_trip_layer

PACKAGE = os.path.join(ROOT, "kgan")
FLAG_MODULES_ALLOWED = ("kgan.cli", "kgan.cli.flags")
MAX_LINES = 450


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


def _is_main_block(node):
    """``if __name__ == "__main__":`` — run only as a script, where the module is ``__main__``
    (``python -m kgan.export`` hands over to kgan.cli.export there): not an import edge."""
    test = getattr(node, "test", None)
    return (isinstance(node, ast.If) and isinstance(test, ast.Compare)
            and isinstance(test.left, ast.Name) and test.left.id == "__name__"
            and any(isinstance(c, ast.Constant) and c.value == "__main__"
                    for c in test.comparators))


def _walk(tree):
    """``ast.walk`` without the ``__main__`` blocks."""
    stack = [tree]
    while stack:
        node = stack.pop()
        yield node
        stack.extend(child for child in ast.iter_child_nodes(node) if not _is_main_block(child))


def _imports(path, module, modules):
    """kgan modules imported by a file (module level and inside functions alike), and the
    absl modules it imports."""
    with open(path) as handle:
        tree = ast.parse(handle.read())
    package = module if path.endswith("__init__.py") else module.rpartition(".")[0]
    found, absl = set(), set()
    for node in _walk(tree):
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
        clis = [n[:-3] for n in os.listdir(os.path.join(PACKAGE, "cli"))
                if n.endswith(".py") and n not in ("__init__.py", "common.py", "startup.py")]
        self.assertNotEmpty(clis)
        for cli in clis:
            with open(os.path.join(PACKAGE, cli + ".py")) as handle:
                self.assertIn(f"from kgan.cli.{cli} import main", handle.read(), cli)


class LayerRoundTripTest(tf.test.TestCase):

    def test_every_kgan_layer_round_trips_with_safe_mode(self):
        classes = kgan_layer_classes()
        self.assertGreaterEqual(len(classes), 8)
        for cls in classes:
            with self.subTest(layer=cls.__name__):
                round_trip_layer(self, cls, **LAYER_EXAMPLES.get(cls.__name__, {}))
