"""The project's promises about itself: README commands, CI, generated tables, import boundaries."""

from __future__ import annotations

import ast
import re

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
    assert run_tests.endswith("python -m pytest")
    assert f"bash -c '{run_tests}'" in (ROOT / ".ci" / "run").read_text()


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


def test_requirements_accept_the_tested_torch():
    text = (ROOT / "requirements.txt").read_text()
    assert "torch>=2.4,<=2.14.1" in text and "torchvision>=0.19,<=0.29.1" in text
