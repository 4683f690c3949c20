"""The project's promises about itself: README commands, CI, generated tables, import boundaries."""

from __future__ import annotations

import ast
import re

import pytest

from resnet_core.__main__ import architecture_rows, markdown_table

from .conftest import ROOT

README = (ROOT / "README.md").read_text()


def shell_blocks(text: str) -> list[str]:
    return re.findall(r"```bash\n(.*?)```", text, flags=re.S)


def test_readme_has_the_two_setup_commands_and_ci_runs_the_test_one():
    blocks = shell_blocks(README.split("## Set up", 1)[1].split("## ", 1)[0])
    assert len(blocks) == 2
    run_app, run_tests = (block.strip() for block in blocks)
    assert run_app.endswith("python app.py") and "requirements.txt" in run_app
    assert run_tests.endswith("python -m pytest -n 2")  # the whole suite on two workers (CONTRIBUTING.md)
    assert f"bash -c '{run_tests}'" in (ROOT / ".ci" / "run").read_text()


@pytest.mark.slow  # the cost table of every architecture at two sizes
def test_readme_architecture_table_is_generated():
    table = README.split("<!-- architectures:start -->\n", 1)[1].split("\n<!-- architectures:end -->", 1)[0]
    assert table.strip() == markdown_table(architecture_rows()).strip()


def test_library_never_imports_gradio():
    for path in (ROOT / "resnet_core").rglob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and node.module:
                names.append(node.module)
            assert not any(name.split(".")[0] == "gradio" for name in names), path


def test_requirements_accept_the_tested_versions_and_agree_with_pyproject():
    from importlib.metadata import version

    from packaging.requirements import Requirement

    lines = [line.split("#")[0].strip() for line in (ROOT / "requirements.txt").read_text().splitlines()]
    requirements = {req.name: req for req in map(Requirement, filter(None, lines))}
    for name in ("torch", "torchvision", "gradio", "captum", "pandas", "numpy"):
        assert requirements[name].specifier.contains(version(name), prereleases=True), name
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+

    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    assert {req.name: req.specifier for req in map(Requirement, declared)} == {
        name: req.specifier for name, req in requirements.items()
    }


@pytest.mark.slow  # a cold mypy run takes about 20 s
def test_library_type_checks():
    """``mypy`` with no arguments, as pyproject.toml's ``[tool.mypy]`` configures it (resnet_core), finds nothing."""
    pytest.importorskip("mypy")
    import subprocess
    import sys

    result = subprocess.run([sys.executable, "-m", "mypy"], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, f"mypy failed:\n{result.stdout}{result.stderr}"


def test_the_network_guard_refuses_outside_addresses():
    import socket

    from . import conftest

    before = len(conftest.outside_attempts())
    with socket.socket() as sock, pytest.raises(OSError, match="beyond this machine"):
        sock.connect(("192.0.2.1", 443))  # TEST-NET-1: never routed, and refused before any packet leaves
    with pytest.raises(OSError, match="beyond this machine"):
        socket.getaddrinfo("huggingface.co", 443)
    assert socket.getaddrinfo("localhost", 80) and socket.getaddrinfo("127.0.0.1", 80)
    attempts = conftest.outside_attempts()[before:]
    conftest.forget_attempts_since(before)  # this test's own attempts were the point
    assert [(a["event"], a["host"]) for a in attempts] == [
        ("socket.connect", "'192.0.2.1'"),
        ("socket.getaddrinfo", "'huggingface.co'"),
    ]


def test_the_network_guard_sees_child_processes():
    """A Python process the suite starts inherits the guard: its attempt is refused and recorded by name."""
    import subprocess
    import sys

    from . import conftest

    before = len(conftest.outside_attempts())
    code = (
        "import socket, urllib.request\n"
        "socket.getaddrinfo('localhost', 80)\n"
        "try:\n    urllib.request.urlopen('http://169.254.169.254/latest/meta-data/', timeout=1)\n"
        "except OSError as error:\n    print('refused:', error)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    attempts = conftest.outside_attempts()[before:]
    conftest.forget_attempts_since(before)
    assert result.returncode == 0, result.stderr
    assert "beyond this machine" in result.stdout
    assert [(a["event"], a["host"], a["argv"]) for a in attempts] == [
        ("socket.getaddrinfo", "'169.254.169.254'", ["-c"])
    ]
    assert any("<string>" in frame for frame in attempts[0]["from"])  # names the code that asked
