"""The console in a real browser: Playwright drives Debian's chromium against the console and the three services,
all as processes on the real broker and database.

Chromium is the system's (scripts/lib.sh ensure_chromium installs it); no browser is ever downloaded. Without it
the tests fail, never skip: a console nobody tested in a browser is not tested. ``CONSOLE_SCREENSHOTS=<dir>``
saves the main pages there (docs/console/ holds the committed ones).
"""

from __future__ import annotations

import csv
import io
import os
import re
import shutil
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pypdfium2
import pytest
from playwright.async_api import Browser, BrowserContext, Page, async_playwright, expect

import samples
from shared.platform.clock import china_today
from tests.processes import ServiceProcess
from tests.support import auth, eventually, key

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# The console counts due dates from a day past the escalation's due date, so the case is overdue (rule 12).
CONSOLE_TODAY = china_today() + timedelta(days=14)
SHOTS = os.environ.get("CONSOLE_SCREENSHOTS")


@pytest.fixture
def console(services: dict[str, str], tmp_path: Path) -> Iterator[str]:
    env = {
        "CONSOLE_APPLICATIONS_URL": services["applications"],
        "CONSOLE_REVIEW_URL": services["review"],
        "CONSOLE_REGISTRY_URL": services["registry"],
        "CONSOLE_TODAY": CONSOLE_TODAY.isoformat(),
    }
    process = ServiceProcess("console", env, tmp_path)
    process.start()
    try:
        process.wait_healthy()
        yield process.url
    finally:
        process.stop()


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    assert shutil.which(CHROMIUM), f"{CHROMIUM} is missing: scripts/lib.sh ensure_chromium installs Debian's chromium"
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            await launched.close()


async def _signed_in(browser: Browser, console: str, credential: str) -> tuple[BrowserContext, Page]:
    context = await browser.new_context(
        base_url=console, accept_downloads=True, viewport={"width": 1360, "height": 900}
    )
    page = await context.new_page()
    await page.goto("/signin")
    await page.fill("#credential", credential)
    await page.click("form[action='/signin'] button[type=submit]")
    await page.wait_for_load_state()
    return context, page


async def _shot(page: Page, name: str) -> None:
    if SHOTS:
        Path(SHOTS).mkdir(parents=True, exist_ok=True)
        await page.screenshot(path=str(Path(SHOTS) / f"{name}.png"), full_page=True)


async def _escalated_and_exported(services: dict[str, str]) -> tuple[str, str]:
    """An application escalated to the officers (a unit price far below the reference), and a license granted
    at once with one export accepted and one refused past its balance. Returns the escalated application's id
    and the granted license's number."""
    applications, registry, review = services["applications"], services["registry"], services["review"]
    async with httpx.AsyncClient(timeout=10, headers=auth()) as client:
        escalated = await client.post(
            f"{applications}/applications", json=samples.application_data(unit_price="20000.00", quantity=10)
        )
        granted = await client.post(f"{applications}/applications", json=samples.application_data(quantity=10))
        escalated_id, granted_id = escalated.json()["application_id"], granted.json()["application_id"]

        async def queued() -> bool | None:
            answer = await client.get(f"{review}/officer/queue", headers=auth("officer44"))
            return True if any(q["application_id"] == escalated_id for q in answer.json()) else None

        async def number() -> str | None:
            answer = (await client.get(f"{registry}/applications/{granted_id}")).json()
            found: str | None = answer.get("license_number")
            return found

        await eventually(queued, timeout=30, what="the escalation in the officers' queue")
        license_number = await eventually(number, timeout=30, what="the license")
        for sequence, quantity in ((1, 6), (2, 5)):
            declaration = samples.declaration_data(license_number, f"53162026CON{sequence:07d}", quantity=quantity)
            assert (await client.post(f"{registry}/exports", json=declaration)).status_code == 202

        async def judged() -> list[Any] | None:
            answer = await client.get(f"{registry}/exports", params={"license": license_number})
            items: list[Any] = answer.json()["items"]
            return items if len(items) == 2 else None

        await eventually(judged, timeout=30, what="both declarations judged")
    return escalated_id, license_number


async def test_officer_approves_the_overdue_case_with_fewer_vehicles_and_sees_the_license(
    services: dict[str, str], console: str, browser: Browser
) -> None:
    escalated_id, _ = await _escalated_and_exported(services)
    context, page = await _signed_in(browser, console, key("officer44"))
    await expect(page).to_have_url(f"{console}/queue")
    row = page.locator("tr", has=page.locator(f"a[href='/cases/{escalated_id}']"))
    await expect(row).to_have_class("overdue")
    await expect(row).to_contain_text("overdue")
    await _shot(page, "queue")

    await row.locator("a").click()
    await expect(page.locator("h1")).to_contain_text(escalated_id)
    await expect(page.locator("body")).to_contain_text("price_below_reference")
    await expect(page.locator("body")).to_contain_text("ApplicationEscalated")
    await _shot(page, "case")

    await page.fill("#approve-quantity", "3")
    await page.click("#approve-form button[type=submit]")
    await expect(page.locator("h1")).to_contain_text("Confirm the action")
    await page.click("#confirm-form button[type=submit]")
    await expect(page).to_have_url(re.compile(r"/licenses/\d{2}-44-\d+\?done=approve$"), timeout=30_000)
    await expect(page.locator("#license-quantity")).to_have_text("3", timeout=30_000)
    await expect(page.locator(".success")).to_contain_text("Approve")
    number = page.url.split("/licenses/")[1].split("?")[0]
    assert number.startswith(f"{china_today():%y}-44-")
    # The offered actions are the ledger's for an active license: suspend, revoke, replace; never reinstate.
    await expect(page.locator("#suspend-form")).to_be_visible()
    await expect(page.locator("#reinstate-form")).to_have_count(0)
    await _shot(page, "license")

    async with httpx.AsyncClient(timeout=10, headers=auth("auditor44")) as client:
        granted = (await client.get(f"{services['registry']}/licenses/{number}")).json()
    assert (granted["quantity"], granted["status"]) == (3, "active")
    await context.close()


async def test_auditor_reads_a_license_history_and_downloads_the_report_as_pdf_and_csv(
    services: dict[str, str], console: str, browser: Browser, tmp_path: Path
) -> None:
    _, number = await _escalated_and_exported(services)
    context, page = await _signed_in(browser, console, key("auditor44"))
    await page.goto(f"/licenses/{number}")
    history = page.locator("table.events tbody tr")
    await expect(history.first).to_contain_text("active")  # granted
    assert await history.count() >= 2  # then the export of 6 changed its balance
    await expect(page.locator("table.events")).to_contain_text("4")
    await expect(page.locator("body")).to_contain_text("exceeds_balance")
    await expect(page.locator("#suspend-form")).to_have_count(0)  # an auditor never acts
    await _shot(page, "license-history")
    await page.click("#case-link")  # the license's case: its events in order, and no action
    events = page.locator("table.events tbody")
    await expect(events).to_contain_text("ApplicationSubmitted")
    await expect(events).to_contain_text("LicenseGranted")
    await expect(page.locator("#approve-form")).to_have_count(0)

    await page.goto("/exports?outcome=refused")
    await expect(page.locator("table.grid tbody tr")).to_have_count(1)
    await expect(page.locator("table.grid tbody")).to_contain_text("exceeds_balance")
    await _shot(page, "exports")

    await page.goto("/reports?lang=zh")
    await expect(page.locator("h1")).to_have_text("出口许可证统计报表")
    await expect(page.locator("figure.chart img")).to_have_count(6)
    await _shot(page, "reports-zh")
    await page.goto("/reports?lang=en")
    await _shot(page, "reports")
    async with page.expect_download() as pdf_download:
        await page.click("#download-pdf")
    pdf_path = tmp_path / "report.pdf"
    await (await pdf_download.value).save_as(pdf_path)
    async with page.expect_download() as csv_download:
        await page.click("#download-csv")
    csv_path = tmp_path / "report.csv"
    await (await csv_download.value).save_as(csv_path)
    await context.close()

    document = pypdfium2.PdfDocument(pdf_path)
    text = "\n".join(document[i].get_textpage().get_text_range() for i in range(len(document)))
    for title in ("Vehicles exported by month", "Vehicles exported by destination", "Refusals by reason"):
        assert title in text, text[:2000]
    assert "MX" in text and "exceeds_balance" in text
    for i in range(len(document)):
        image = document[i].render(scale=0.5).to_pil().convert("L")
        low, high = image.getextrema()
        assert high - low > 100, f"page {i + 1} of the PDF is blank"

    rows = list(csv.reader(io.StringIO(csv_path.read_text(encoding="utf-8-sig"))))
    assert ["exports_by_destination", "MX", "6", "1", ""] in rows
    assert ["refusals_by_reason", "export:exceeds_balance", "1", "", ""] in rows


async def test_another_agencys_officer_neither_sees_nor_decides_the_case(
    services: dict[str, str], console: str, browser: Browser
) -> None:
    escalated_id, _ = await _escalated_and_exported(services)
    context, page = await _signed_in(browser, console, key("officer32"))
    await expect(page).to_have_url(f"{console}/queue")
    await expect(page.locator(f"a[href='/cases/{escalated_id}']")).to_have_count(0)
    await expect(page.locator("body")).to_contain_text("No application is waiting")
    # Even at the case's own address, an approval is the officer API's to refuse: 403 other_agency, shown as such.
    await page.goto(f"/cases/{escalated_id}")
    await expect(page.locator("#approve-form")).to_have_count(0)  # not in its agency's queue: nothing to act on
    csrf = await page.locator("form[action='/signout'] input[name=csrf]").get_attribute("value")
    answer = await page.request.post(
        f"{console}/cases/{escalated_id}/approve", form={"csrf": csrf or "", "confirmed": "yes", "quantity": "1"}
    )
    assert answer.status == 403 and "other_agency" in await answer.text()
    await context.close()


async def test_a_submitter_cannot_reach_officer_pages_and_a_form_without_its_csrf_token_is_refused(
    services: dict[str, str], console: str, browser: Browser
) -> None:
    context, page = await _signed_in(browser, console, key("submitter44"))
    answer = await page.goto("/queue")
    assert answer is not None and answer.status == 403
    await expect(page.locator("h1")).to_have_text("Not for this credential")
    answer = await page.goto("/reports")
    assert answer is not None and answer.status == 403
    await context.close()

    context, page = await _signed_in(browser, console, key("officer44"))
    await expect(page).to_have_url(f"{console}/queue")
    # The session cookie goes along (same origin), but no token: refused before anything is sent to the services.
    refused = await page.request.post(f"{console}/signout", form={"nothing": "here"})
    assert refused.status == 403 and "CSRF" in await refused.text()
    forged = await page.request.post(f"{console}/signout", form={"csrf": "not-the-token"})
    assert forged.status == 403
    cookie = next(c for c in await context.cookies() if c["name"] == "console_session")
    assert (cookie["httpOnly"], cookie["secure"], cookie["sameSite"]) == (True, True, "Strict")
    # Signing out with the form's own token works, and the session is gone.
    await page.click("form[action='/signout'] button")
    await expect(page).to_have_url(f"{console}/signin")
    answer = await page.goto("/queue")
    assert answer is not None and page.url == f"{console}/signin"
    await context.close()


async def test_every_service_serves_its_docs_without_a_cdn(services: dict[str, str], browser: Browser) -> None:
    page = await browser.new_page()
    outside: list[str] = []
    local = ("http://127.0.0.1", "data:", "blob:")
    page.on("request", lambda r: None if r.url.startswith(local) else outside.append(r.url))
    for url in services.values():
        await page.goto(f"{url}/docs")
        await expect(page.locator(".swagger-ui .title").first).to_be_visible(timeout=20_000)
        await page.goto(f"{url}/redoc")
        await expect(page.locator("h1").first).to_be_visible(timeout=20_000)
    assert not outside, outside
    await page.close()
