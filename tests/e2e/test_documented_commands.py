"""Every command the README and docs/*.md show in a fenced shell block runs, as written, against
a running system: the documentation cannot drift from the CLI and the API again.

Placeholders (`<tenant_id>`, `$TENANT`, the default address `http://127.0.0.1:8000`, …) are
filled with a tenant that has a source, an attributed order (990001, the id docs/api.md uses),
a converting journey and dead events. Each document runs as one bash script in a scratch
directory, blocks in order, stopping at the first command that fails; `curl` fails on an HTTP
error. Only the commands in SKIPPED do not run, each for the reason given there.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import re
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import httpx
import pytest

from e2e_system import RunningSystem

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
DOCUMENTS = [REPO / "README.md", *sorted((REPO / "docs").rglob("*.md"))]
SHELL_BLOCK = re.compile(r"^( *)```(?:sh|bash|shell)\n(.*?)^\1```", re.S | re.M)
SECRET = "shpss_documented_commands"
WOOCOMMERCE_SECRET = "wc-documented-commands"
ORDER_ID = 990001  # the order docs/api.md explains

# A logical line (continuations joined) matching one of these does not run.
SKIPPED = {
    r"^make up\b": "runs the whole system until stopped; this test's system is that `skeldir up`",
    r"^make test\b": "runs every test, this one included",
    r"^make demo\b": "`make install`, then `skeldir demo`, which runs as docs/demo.md shows it",
    r"^skeldir up &": "the system this test runs against is that `skeldir up`",
    r"^skeldir (api|worker)\b": "deployment servers that run until stopped",
    r"^export SKELDIR_": "a deployment's own hosts (db, broker) and key; the running system's"
    " settings come from its data dir",
    r"^\.venv/bin/pytest\b": "runs tests from within a test",
}


def signed(body: bytes) -> str:
    return base64.b64encode(hmac.new(SECRET.encode(), body, hashlib.sha256).digest()).decode()


def wait_until_fresh(system: RunningSystem, key: str) -> None:
    deadline = time.monotonic() + 60
    while True:
        status = httpx.get(f"{system.api_url}/api/status", timeout=10,
                           headers={"Authorization": f"Bearer {key}"}).json()
        if status["freshness"]["reports_fresh"]:
            return
        assert time.monotonic() < deadline, f"reports not fresh after 60 s: {status}"
        time.sleep(0.2)


@pytest.fixture(scope="module")
def shop(system: RunningSystem) -> dict[str, str]:
    """A tenant with a Shopify source, one attributed order of a converting journey, three
    dead events (signed deliveries without their topic header) and a spare read key."""
    tenant = system.cli("tenant", "create", "documented shop", "--json")
    source = system.cli("source", "add", "--tenant", tenant["tenant_id"], "--provider", "shopify",
                        "--secret", SECRET, "--json")
    ordered_at = datetime.now(timezone.utc) - timedelta(hours=1)
    visits = [{"id": f"docs-{n}", "visitor_id": "v-docs", "url": url,
               "occurred_at": (ordered_at - timedelta(hours=3 - n)).isoformat(),
               **({"checkout_token": "chk-docs"} if n else {})}
              for n, url in enumerate(["https://shop.example/?utm_source=google&utm_medium=cpc",
                                       "https://shop.example/?utm_source=news&utm_medium=email"])]
    collected = httpx.post(f"{system.api_url}/api/touchpoints", json={"touchpoints": visits},
                           headers={"Authorization": f"Bearer {tenant['collect_key']}"}, timeout=10)
    assert collected.json()["accepted"] == 2, collected.text
    order = json.dumps({"id": ORDER_ID, "currency": "USD", "total_price": "42.00",
                        "created_at": ordered_at.isoformat(),
                        "checkout_token": "chk-docs"}).encode()
    headers = {"Content-Type": "application/json", "X-Shopify-Hmac-Sha256": signed(order)}
    accepted = httpx.post(source["url"], content=order, timeout=10,
                          headers={**headers, "X-Shopify-Topic": "orders/create"})
    assert accepted.json()["status"] == "accepted", accepted.text
    dead = []
    for n in range(3):
        body = json.dumps({"id": ORDER_ID + 1 + n, "currency": "USD",
                           "total_price": "1.00"}).encode()
        answer = httpx.post(source["url"], content=body, timeout=10, headers={
            "Content-Type": "application/json", "X-Shopify-Hmac-Sha256": signed(body)})
        assert answer.json()["status"] == "dead_lettered", answer.text
        dead.append(answer.json()["dead_event_id"])
    # docs/api.md reads WooCommerce order 1 of a named store.
    store = system.cli("source", "add", "--tenant", tenant["tenant_id"], "--provider",
                       "woocommerce", "--secret", WOOCOMMERCE_SECRET, "--json")
    woo_order = json.dumps({"id": 1, "status": "processing", "currency": "USD", "total": "12.50",
                            "date_created_gmt": ordered_at.strftime("%Y-%m-%dT%H:%M:%S"),
                            "date_modified_gmt": ordered_at.strftime("%Y-%m-%dT%H:%M:%S"),
                            "refunds": [], "meta_data": []}).encode()
    woo = httpx.post(store["url"], content=woo_order, timeout=10, headers={
        "Content-Type": "application/json", "X-WC-Webhook-Topic": "order.created",
        "X-WC-Webhook-Resource": "order", "X-WC-Webhook-Delivery-ID": "docs-1",
        "X-WC-Webhook-Signature": base64.b64encode(hmac.new(
            WOOCOMMERCE_SECRET.encode(), woo_order, hashlib.sha256).digest()).decode()})
    assert woo.json()["status"] == "accepted", woo.text
    spare = httpx.post(f"{system.api_url}/api/keys", json={"scope": "read"}, timeout=10,
                       headers={"Authorization": f"Bearer {tenant['api_key']}"}).json()
    wait_until_fresh(system, tenant["api_key"])
    return {**tenant, **source, "dead": dead, "spare_key_id": spare["key_id"],
            "store_id": store["source_id"]}


def placeholders(system: RunningSystem, shop: dict) -> dict[str, str]:
    return {
        "http://127.0.0.1:8000": system.api_url,
        "<tenant_id>": shop["tenant_id"],
        "<tenant id>": shop["tenant_id"],
        "<api_key>": shop["api_key"],
        "<admin key>": shop["api_key"],
        "<collect_key>": shop["collect_key"],
        "<key_id>": shop["spare_key_id"],
        "<order id>": str(ORDER_ID),
        "<source id>": shop["source_id"],
        "<app client secret>": "docs-client-secret",
        "<client secret>": "docs-client-secret",
        "<that secret>": "docs-woocommerce-secret",
        "<webhook id>": "WH-DOCS-0001",
        "0b6f...e1 5c2a...97": f"{shop['dead'][0]} {shop['dead'][1]}",
    }


def shell_blocks(document: Path) -> list[tuple[int, str]]:
    text = document.read_text()
    return [(text[:m.start()].count("\n") + 1, m.group(2)) for m in SHELL_BLOCK.finditer(text)]


def runnable(block: str, fill: dict[str, str]) -> tuple[str, list[str]]:
    """The block with placeholders filled and skipped commands replaced by a no-op; and the
    commands it skipped."""
    for placeholder, value in fill.items():
        block = block.replace(placeholder, value)
    lines, skipped, pending = [], [], []
    for line in block.splitlines():
        pending.append(line)
        if line.endswith("\\"):
            continue
        logical = " ".join(part.strip().removesuffix("\\").strip() for part in pending)
        reason = next((why for rule, why in SKIPPED.items() if re.search(rule, logical)), None)
        if reason:
            skipped.append(logical)
            lines.append(f": skipped  # {reason}")
        else:
            lines += pending
        pending = []
    script = "\n".join(lines)
    unfilled = re.findall(r"<[a-z][a-z_ ]*>", script)
    assert not unfilled, f"placeholders this test does not know: {unfilled}"
    return script, skipped


def shell_env(system: RunningSystem, shop: dict, workdir: Path) -> dict[str, str]:
    bin_dir = workdir / "bin"
    bin_dir.mkdir()
    curl = bin_dir / "curl"
    # As written, but an HTTP error fails the command (a drifted path or parameter).
    curl.write_text('#!/bin/sh\nexec /usr/bin/curl --fail-with-body --silent --show-error "$@"\n')
    curl.chmod(0o755)
    # `skeldir` as an installed command; `.venv/bin/...` as from the repository. Nothing else of
    # the virtualenv is on PATH, as in a new user's shell.
    (bin_dir / "skeldir").symlink_to(Path(sys.prefix) / "bin" / "skeldir")
    (workdir / ".venv").symlink_to(Path(sys.prefix))
    return {
        **system.env,
        "SKELDIR_DATA_DIR": str(system.data_dir),
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        # docs/api.md and docs/operations.md name these.
        "SKELDIR": system.api_url,
        "URL": system.api_url,
        "KEY": shop["api_key"],
        "ADMIN_KEY": shop["api_key"],
        "TENANT": shop["tenant_id"],
        "DEAD_EVENT_ID": shop["dead"][2],
        "SOURCE_ID": shop["store_id"],
    }


def rules_file(workdir: Path) -> None:
    """`rules.json` of docs/attribution.md: the example document of docs/channel-rules.md."""
    text = (REPO / "docs" / "channel-rules.md").read_text()
    example = re.search(r"## The document\n\n```json\n(.*?)```", text, re.S).group(1)
    (workdir / "rules.json").write_text(example)


@pytest.mark.parametrize("document", [d for d in DOCUMENTS if shell_blocks(d)],
                         ids=lambda p: str(p.relative_to(REPO)))
def test_every_documented_command_runs_as_written(system, shop, document, tmp_path):
    blocks = shell_blocks(document)
    fill = placeholders(system, shop)
    rules_file(tmp_path)
    env = shell_env(system, shop, tmp_path)
    script = ["set -eo pipefail"]
    for line, block in blocks:
        commands, _ = runnable(block, fill)
        script += [f"echo '::: {document.name}:{line}' >&2", commands]
    done = subprocess.run(["bash", "-x", "-c", "\n".join(script)], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, (
        f"a command of {document.relative_to(REPO)} failed (exit {done.returncode}); its trace:\n"
        f"{done.stderr[-6000:]}\nstdout:\n{done.stdout[-2000:]}")


def test_the_skip_list_is_small_and_every_rule_is_used(system, shop):
    fill = placeholders(system, shop)
    skipped = [command for document in DOCUMENTS for _, block in shell_blocks(document)
               for command in runnable(block, fill)[1]]
    for rule in SKIPPED:
        assert any(re.search(rule, command) for command in skipped), f"unused skip rule {rule}"
    blocks = sum(len(shell_blocks(document)) for document in DOCUMENTS)
    assert len(skipped) <= 14 and blocks >= 30, (len(skipped), blocks)
