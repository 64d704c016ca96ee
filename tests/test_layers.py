"""The package is layered: each module imports only modules of its own layer or the layers above it (lazy
imports inside functions included), and reporting never imports the trainer (docs/ARCHITECTURE.md)."""
import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "mamc"
LAYERS = [
    ("config", "manifest", "lock", "progress", "preempt"),
    ("run",),
    ("losses", "meta", "models", "evaluate", "topics", "checkpoint", "distributed", "logs", "embed", "data", "pool",
     "caption"),
    ("runs",),
    ("train", "qa", "experiments"),
    ("report",),
    ("notebook", "watchdog", "reproduce", "lab", "gpu_check", "cli", "__main__", "__init__"),
]


def layer(module: str) -> int:
    head = module.split(".")[0]
    return next(i for i, names in enumerate(LAYERS) if head in names)


def imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("mamc."):
            found.add(node.module[len("mamc."):])
        elif isinstance(node, ast.ImportFrom) and node.module == "mamc":
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(a.name[len("mamc."):] for a in node.names if a.name.startswith("mamc."))
    return found


def test_every_module_imports_only_its_own_or_lower_layers():
    violations = []
    for path in sorted(PACKAGE.rglob("*.py")):
        module = path.relative_to(PACKAGE).with_suffix("").as_posix().replace("/", ".")
        for imported in imports(path):
            if layer(imported) > layer(module):
                violations.append(f"{module} (layer {layer(module)}) imports {imported} (layer {layer(imported)})")
    assert not violations, "\n".join(violations)


def test_reporting_imports_no_trainer():
    for path in (PACKAGE / "report").glob("*.py"):
        assert not {"train", "qa", "experiments"} & {m.split(".")[0] for m in imports(path)}, path.name


def test_no_module_imports_itself_through_others():
    """No cycle, lazy imports included: a cycle hidden inside a function is still one design knot."""
    graph = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        module = path.relative_to(PACKAGE).with_suffix("").as_posix().replace("/", ".").removesuffix(".__init__")
        graph[module] = {m for m in imports(path) if m != module}

    def reaches(start: str, goal: str, seen: set) -> bool:
        return any(nxt == goal or (nxt not in seen and reaches(nxt, goal, seen | {nxt})) for nxt in graph.get(start, ()))

    cycles = sorted(m for m in graph if reaches(m, m, {m}))
    assert not cycles, f"modules on an import cycle: {cycles}"
