"""The doc-block runner itself: markers are read strictly (a typo must not silently drop a block)
and a block that would fail for a newcomer fails the test (bare `scorer`, an HTTP error, output
the doc shows but the command does not print)."""

from __future__ import annotations

import http.server
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.docs import test_doc_blocks as runner
from tests.docs.blocks import Block, MarkerError, all_groups, groups, parse


def _md(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "doc.md"
    path.write_text(text)
    return path


def test_markers_pair_servers_with_clients_and_read_console_blocks(tmp_path: Path) -> None:
    doc = _md(tmp_path, "<!-- newcomer: server soak -->\n```bash\nserve --port 8000\n```\ntext\n"
                        "<!-- newcomer: client -->\n```console\n$ curl a \\\n    b\n{\"ok\": 1}\n  ...\n```\n"
                        "```bash\nunmarked\n```\n<!-- newcomer: run -->\n```sh\nx\n```\n")
    found = groups(parse(doc, tmp_path))
    assert [(g.first.kind, g.soak, len(g.clients)) for g in found] == [("server", True, 1), ("run", False, 0)]
    client = found[0].clients[0]
    assert client.script() == "curl a \\\n    b\n" and client.expected_output() == ['{"ok": 1}']
    assert client.where == "doc.md:7"


@pytest.mark.parametrize("text, message", [
    ("<!-- newcomer: runn -->\n```bash\nx\n```\n", "expected 'newcomer: run|server|client"),
    ("<!-- newcomer: run -->\n\n```bash\nx\n```\n", "followed at once by a"),
    ("<!-- newcomer: run -->\n```yaml\nx: 1\n```\n", "followed at once by a"),
    ("<!-- newcomer: run -->\n```bash\nx\n", "never closed"),
    ("<!-- newcomer: client -->\n```bash\nx\n```\n", "needs a server block above it"),
])
def test_bad_markers_are_errors(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(MarkerError, match=message):
        groups(parse(_md(tmp_path, text), tmp_path))


def test_the_docs_mark_the_newcomer_path() -> None:
    found = all_groups()
    scripts = "\n".join(b.script() for g in found for b in [g.first, *g.clients])
    for step in ("scorer validate", "scorer serve configs/endpoints/demo.yaml", "curl", "scorer traffic",
                 "scorer token", "make demo-data", "scorer batch"):
        assert step in scripts, step
    assert any(not g.soak and g.first.kind == "server" for g in found), "CI runs at least one server block"


def _block(text: str, lang: str = "bash") -> Block:
    return Block("doc.md", 1, "run", False, lang, text)


def test_a_bare_scorer_fails(sandbox: tuple[Path, dict[str, str]]) -> None:
    root, env = sandbox
    runner._run(_block(".venv/bin/scorer --help >/dev/null\n"), root, env, ".venv/bin/scorer --help >/dev/null\n")
    with pytest.raises(AssertionError, match="exit 127"):
        runner._run(_block("scorer --help\n"), root, env, "scorer --help\n")


def test_output_the_doc_shows_must_be_printed(sandbox: tuple[Path, dict[str, str]]) -> None:
    root, env = sandbox
    runner._run(_block("$ echo one\none\n", "console"), root, env, "echo one\n")
    with pytest.raises(AssertionError, match="did not print"):
        runner._run(_block("$ echo one\ntwo\n", "console"), root, env, "echo one\n")


@pytest.fixture
def refusing_server() -> Iterator[int]:
    class Refuse(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(401)
            self.end_headers()
            self.wfile.write(b'{"message": "missing credentials"}')

        def log_message(self, *args: object) -> None:
            pass

    httpd = http.server.HTTPServer(("127.0.0.1", 0), Refuse)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield int(httpd.server_address[1])
    httpd.shutdown()


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_a_curl_that_gets_a_4xx_fails(sandbox: tuple[Path, dict[str, str]], refusing_server: int) -> None:
    root, env = sandbox
    script = f"curl -s http://127.0.0.1:{refusing_server}/score\n"
    with pytest.raises(AssertionError, match="exit 22"):
        runner._run(_block(script), root, env, script)
