"""The hand-written stubs (_core.pyi) match the compiled module."""

import ast
import re
import types
from pathlib import Path

import pytest

import pushpoll
from pushpoll import _core

STUB = Path(pushpoll.__file__).with_name("_core.pyi")
# Special methods that are part of the API, and so must be in the stubs when the class has them.
API_DUNDERS = {"__enter__", "__exit__", "__len__", "__iter__", "__aiter__", "__getitem__"}


def stub_tree():
    return ast.parse(STUB.read_text())


def stub_top_level():
    names = {}
    for node in stub_tree().body:
        if isinstance(node, ast.ClassDef):
            names[node.name] = node
        elif isinstance(node, ast.FunctionDef):
            names[node.name] = node
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names[node.target.id] = node
    return names


def stub_members(cls: ast.ClassDef):
    out = set()
    for node in cls.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name != "__init__":
            out.add(node.name)
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            out.add(node.target.id)
    return out


def runtime_members(cls):
    out = set()
    for name in dir(cls):
        if name.startswith("_") and name not in API_DUNDERS:
            continue
        if name in API_DUNDERS and name not in vars(cls):
            continue
        if issubclass(cls, BaseException) and name in dir(OSError if issubclass(cls, OSError) else Exception):
            continue
        if issubclass(cls, tuple) and name in dir(tuple):
            continue
        out.add(name)
    return out


def test_stubs_ship_with_the_package():
    assert STUB.is_file()
    assert STUB.with_name("py.typed").is_file()


def test_module_names_match():
    public = {n for n in dir(_core) if not n.startswith("__")} | {"__version__"}
    assert public == set(stub_top_level())
    # The rest of the package's exports are pure Python (the asyncio glue), typed inline.
    assert set(pushpoll.__all__) <= set(stub_top_level()) | set(pushpoll._aio.__all__)


@pytest.mark.parametrize(
    "name", sorted(n for n, v in vars(_core).items() if isinstance(v, type))
)
def test_class_members_match(name):
    stub = stub_top_level()[name]
    assert isinstance(stub, ast.ClassDef)
    cls = getattr(_core, name)
    expected = runtime_members(cls)
    if issubclass(cls, tuple):  # BatchArrays: the field names
        expected |= set(cls._fields) if hasattr(cls, "_fields") else set(cls.__match_args__)
        expected -= {"n_fields", "n_sequence_fields", "n_unnamed_fields"}
    assert stub_members(stub) == expected


def test_every_public_stub_has_a_docstring():
    missing = []
    for node in ast.walk(stub_tree()):
        if isinstance(node, ast.ClassDef) and not ast.get_docstring(node):
            missing.append(node.name)
    assert missing == []


# --- The docstrings: one text, in two places -------------------------------------------------
# The contract is written once in the C++ headers; the bindings translate it into Python terms, and
# the stubs repeat the bindings' text so that editors show what help() shows. This test keeps the two
# Python copies identical (up to line breaks), so a change to one that forgets the other fails here.

SIGNATURE = re.compile(r"^\s*[A-Za-z_]\w*\(.*?\)(?: -> [^\n]*)?\n", re.S)


def normalized(doc):
    if not doc:
        return ""
    return " ".join(SIGNATURE.sub("", doc, count=1).split())


def stub_docstrings():
    """(qualified name, stub docstring, runtime object) for everything the stubs document."""
    for node in stub_tree().body:
        if isinstance(node, ast.FunctionDef):
            yield node.name, ast.get_docstring(node), getattr(_core, node.name)
        if not isinstance(node, ast.ClassDef):
            continue
        cls = getattr(_core, node.name)
        yield node.name, ast.get_docstring(node), cls
        for i, member in enumerate(node.body):
            if isinstance(member, (ast.FunctionDef, ast.AsyncFunctionDef)):
                if member.name == "__init__":
                    continue
                yield f"{node.name}.{member.name}", ast.get_docstring(member), vars(cls).get(member.name)
            elif isinstance(member, ast.AnnAssign) and isinstance(member.target, ast.Name):
                after = node.body[i + 1] if i + 1 < len(node.body) else None
                doc = None
                if isinstance(after, ast.Expr) and isinstance(after.value, ast.Constant):
                    doc = after.value.value
                yield f"{node.name}.{member.target.id}", doc, vars(cls).get(member.target.id)


@pytest.mark.parametrize("name,stub_doc,obj", list(stub_docstrings()), ids=lambda v: v if isinstance(v, str) else "")
def test_stub_docstring_is_the_runtime_docstring(name, stub_doc, obj):
    # Members the class inherits (tuple's fields, Exception's) or that carry no text of their own
    # (a special method pybind documents by its signature alone) must say nothing in the stub either.
    assert normalized(stub_doc) == normalized(own_docstring(obj))


def own_docstring(obj):
    """The text obj carries itself: none for a plain value (its type's) or a slot wrapper's."""
    if obj is None or isinstance(obj, (types.WrapperDescriptorType, types.MethodWrapperType)):
        return None
    doc = getattr(obj, "__doc__", None)
    if not callable(obj) and not isinstance(obj, property) and doc == type(obj).__doc__:
        return None
    return doc
