"""The package never deserialises by executing: a static (ast) scan of actors/, bus/, adapters/.

Decoding untrusted bytes must never run code (docs/wire-format.md,
docs/security.md). These tests read every source file of the package and fail
on: an import of pickle, marshal, shelve, dill, cloudpickle or jsonpickle; a
call of the builtins eval, exec, compile or __import__; yaml.load (or
unsafe_load / full_load) without SafeLoader; and a subprocess/os call with
shell=True or os.system/os.popen. The scanner itself is tested on snippets,
so a passing scan means something.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE_DIRS = ("actors", "bus", "adapters")

BANNED_MODULES = frozenset(
    {"pickle", "cPickle", "marshal", "shelve", "dill", "cloudpickle", "jsonpickle"}
)
BANNED_BUILTINS = frozenset({"eval", "exec", "compile", "__import__"})
UNSAFE_YAML = frozenset(
    {"load", "load_all", "unsafe_load", "unsafe_load_all", "full_load", "full_load_all"}
)
SHELL_CALLS = frozenset({"system", "popen", "popen2", "popen3", "getoutput", "getstatusoutput"})


@dataclass(frozen=True, slots=True)
class Finding:
    """One dangerous construct: where and what."""

    path: str
    line: int
    what: str


def _dotted(node: ast.expr) -> str:
    """`a.b.c` for an attribute chain of names, else ''."""
    parts: list[str] = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
        return ".".join(reversed(parts))
    return ""


def _is_safe_loader(node: ast.expr) -> bool:
    return _dotted(node).split(".")[-1] in {"SafeLoader", "CSafeLoader", "BaseLoader"}


def scan_source(source: str, path: str = "<snippet>") -> list[Finding]:
    """Every banned import or call in `source` (parsed, never executed)."""
    findings: list[Finding] = []
    for node in ast.walk(ast.parse(source, filename=path)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] in BANNED_MODULES:
                    findings.append(Finding(path, node.lineno, f"import {alias.name}"))
        elif isinstance(node, ast.ImportFrom):
            module = (node.module or "").split(".")[0]
            if module in BANNED_MODULES:
                findings.append(Finding(path, node.lineno, f"from {node.module} import"))
            if module == "builtins" and any(a.name in BANNED_BUILTINS for a in node.names):
                findings.append(Finding(path, node.lineno, "from builtins import eval/exec"))
        elif isinstance(node, ast.Call):
            name = _dotted(node.func)
            last = name.split(".")[-1]
            keywords = {k.arg: k.value for k in node.keywords if k.arg is not None}
            if name in BANNED_BUILTINS or name in {f"builtins.{b}" for b in BANNED_BUILTINS}:
                findings.append(Finding(path, node.lineno, f"call {name}()"))
            elif name.startswith("yaml.") and last in UNSAFE_YAML:
                loader = keywords.get("Loader")
                if loader is None and len(node.args) > 1:
                    loader = node.args[1]
                if last != "load" or loader is None or not _is_safe_loader(loader):
                    findings.append(Finding(path, node.lineno, f"call {name}() without SafeLoader"))
            elif name in {f"os.{c}" for c in SHELL_CALLS} or name in {"commands.getoutput"}:
                findings.append(Finding(path, node.lineno, f"call {name}() (runs a shell)"))
            shell = keywords.get("shell")
            if shell is not None and not (isinstance(shell, ast.Constant) and shell.value is False):
                findings.append(Finding(path, node.lineno, f"call {name}(shell=...)"))
    return findings


def package_files() -> list[Path]:
    """Every .py file of the installed folders."""
    files = [p for d in PACKAGE_DIRS for p in sorted((ROOT / d).rglob("*.py"))]
    return [p for p in files if "__pycache__" not in p.parts]


def test_scan_covers_every_package_folder() -> None:
    files = package_files()
    folders = {p.relative_to(ROOT).parts[0] for p in files}
    assert folders == set(PACKAGE_DIRS)
    # The codec and the workers are the trust boundary: they must be among the scanned files.
    names = {p.relative_to(ROOT).as_posix() for p in files}
    assert {
        "bus/codec.py",
        "actors/worker.py",
        "actors/execution_feed.py",
        "adapters/launcher.py",
    } <= names


def test_package_has_no_pickle_eval_exec_unsafe_yaml_or_shell() -> None:
    findings = [
        finding
        for path in package_files()
        for finding in scan_source(
            path.read_text(encoding="utf-8"), path.relative_to(ROOT).as_posix()
        )
    ]
    assert findings == []


@pytest.mark.parametrize(
    ("snippet", "what"),
    [
        ("import pickle", "import pickle"),
        ("import marshal as m", "import marshal"),
        ("from shelve import open", "from shelve import"),
        ("import dill.settings", "import dill.settings"),
        ("from pickle import loads", "from pickle import"),
        ("x = eval('1')", "call eval()"),
        ("exec('x = 1')", "call exec()"),
        ("code = compile('1', 'f', 'eval')", "call compile()"),
        ("m = __import__('os')", "call __import__()"),
        ("import builtins\nbuiltins.eval('1')", "call builtins.eval()"),
        ("import yaml\nyaml.load(text)", "call yaml.load() without SafeLoader"),
        ("import yaml\nyaml.load(text, Loader=yaml.Loader)", "call yaml.load() without SafeLoader"),
        ("import yaml\nyaml.unsafe_load(text)", "call yaml.unsafe_load() without SafeLoader"),
        ("import yaml\nyaml.full_load(text)", "call yaml.full_load() without SafeLoader"),
        ("import subprocess\nsubprocess.run('ls', shell=True)", "call subprocess.run(shell=...)"),
        (
            "import subprocess\nsubprocess.Popen(cmd, shell=flag)",
            "call subprocess.Popen(shell=...)",
        ),
        ("import os\nos.system('ls')", "call os.system() (runs a shell)"),
        ("import os\nos.popen('ls')", "call os.popen() (runs a shell)"),
    ],
)
def test_scanner_flags_each_dangerous_construct(snippet: str, what: str) -> None:
    assert [f.what for f in scan_source(snippet)] == [what]


@pytest.mark.parametrize(
    "snippet",
    [
        "import json\njson.loads(text)",
        "import msgpack\nmsgpack.unpackb(data, raw=False)",
        "import re\nre.compile('x+')",
        "import yaml\nyaml.load(text, Loader=yaml.SafeLoader)",
        "import yaml\nyaml.load(text, yaml.CSafeLoader)",
        "import yaml\nyaml.safe_load(text)",
        "import subprocess\nsubprocess.run(['ls'], check=False)",
        "import subprocess\nsubprocess.run(['ls'], shell=False)",
        "obj.eval()",  # a method named eval is not the builtin
        "import ast\nast.literal_eval('1')",
    ],
)
def test_scanner_accepts_safe_constructs(snippet: str) -> None:
    assert scan_source(snippet) == []
