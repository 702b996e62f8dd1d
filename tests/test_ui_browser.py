"""The UI in a real browser: Playwright driving Debian's chromium (`apt-get install
chromium`; Playwright's own browser download is not used).

Loads every page, trains karate for 20 epochs from the chat box and watches it finish,
compares two runs, opens a study, uploads a CSV graph and trains on it. The chat's planner
is scripted (`tests.ui_helpers.STUB_SERVER`: every request is planned as that training) so
the test measures the page, not the model; everything else is real. Screenshots of each
page go to the test's tmp directory (and `AUTOGLM_UI_SHOTS`, when set).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

pytest.importorskip("starlette", reason="autoglm ui's extras are not installed (pip install .[ui])")
playwright = pytest.importorskip(
    "playwright.sync_api", reason="playwright is not installed (pip install playwright)"
)

from tests.ui_helpers import STUB_SERVER, free_port, make_workspace, ui_process  # noqa: E402

CHROMIUM = os.environ.get("AUTOGLM_CHROMIUM", "/usr/bin/chromium")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run"]  # fmt: skip
DRAWN = "document.querySelectorAll('.plot[data-drawn]').length >= {n}"
SAME_TURN = " || ".join(
    f"document.querySelector('{css}')" for css in ("#job[data-state=done]", ".message.assistant")
)
TRAIN_S = 300_000  # ms a 20-epoch karate training may take from the chat box (shared CPUs)

if not Path(CHROMIUM).is_file():
    pytest.skip(
        f"no chromium at {CHROMIUM} (apt-get install chromium, or set AUTOGLM_CHROMIUM)",
        allow_module_level=True,
    )


@pytest.fixture(scope="module")
def site(tmp_path_factory, data_dir):
    ws = tmp_path_factory.mktemp("uib") / "ws"
    made = make_workspace(ws, data_dir)
    port = free_port()
    with ui_process([str(ws), str(port), str(data_dir)], port, script=STUB_SERVER) as base:
        yield base, made


@pytest.fixture(scope="module")
def browser():
    with playwright.sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser, tmp_path):
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    tab = context.new_page()
    tab.errors = []
    tab.on("pageerror", lambda error: tab.errors.append(str(error)))
    tab.shot = lambda name: _shot(tab, tmp_path, name)
    yield tab
    context.close()
    assert not tab.errors, tab.errors


def _shot(tab, folder: Path, name: str) -> Path:
    path = folder / f"{name}.png"
    tab.screenshot(path=str(path), full_page=True)
    extra = os.environ.get("AUTOGLM_UI_SHOTS")
    if extra:
        Path(extra).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, Path(extra) / path.name)
    return path


def test_every_page_loads_and_draws(site, page):
    base, made = site
    study = made["tune"]["study"]
    for name, path, drawn in [("experiments", "/", 0), ("run", "/runs/1", 2),
                              ("compare", "/compare?ids=1,2", 1), ("studies", "/studies", 0),
                              ("study", f"/studies/{study}", 4), ("chat", "/chat", 0),
                              ("data", "/data", 0)]:  # fmt: skip
        page.goto(base + path)
        if drawn:
            page.wait_for_function(DRAWN.format(n=drawn), timeout=60_000)
        assert page.title().endswith("autoglm ui")
        page.shot(name)
    page.goto(base + "/")
    assert page.locator("table#runs tbody tr").count() >= 3


def test_train_karate_from_the_chat_box_and_watch_it_finish(site, page):
    base, _ = site
    page.goto(base + "/chat")
    page.fill("#chat-text", "train a GCN on karate for 20 epochs")
    page.click("#chat-send")
    page.wait_for_selector("#job .plan", timeout=120_000)
    assert "train(dataset=karate, model=gcn, epochs=20" in page.inner_text("#job .plan")
    other = page.context.new_page()  # a second tab on the same chat, opened mid-turn
    other.goto(page.url)
    page.wait_for_selector("#job[data-state]", timeout=TRAIN_S)
    assert page.get_attribute("#job", "data-state") == "done", page.inner_text("#job")
    reply = page.inner_text("#job .reply")
    assert "%" in reply  # the explanation states the accuracy
    assert "session=" in page.url
    page.shot("chat_done")
    # The second tab followed the running turn, or (if it had ended) shows it stored.
    other.wait_for_function(SAME_TURN, timeout=TRAIN_S)
    other.goto(other.url)
    assert "%" in other.inner_text(".message.assistant .text")
    other.close()
    page.click("#job a[href^='/runs/']")
    page.wait_for_function("document.querySelectorAll('.plot[data-drawn]').length >= 2")
    assert "epochs" in page.inner_text("pre") and "20" in page.inner_text("pre")
    page.shot("chat_run")
    page.goto(page.url)  # a second look sees the same stored state
    page.goto(base + "/chat")
    assert page.locator(".sessions li").count() >= 1


def test_compare_two_runs_from_the_list(site, page):
    base, _ = site
    page.goto(base + "/?kind=train&sort=id&order=asc")
    boxes = page.locator("input[name=ids]")
    boxes.nth(0).check()
    boxes.nth(1).check()
    page.click("#compare-button")
    page.wait_for_selector("#significance")
    assert "Welch t-test" in page.inner_text("#significance")
    assert "model" in page.inner_text("#differences")
    page.wait_for_function("document.querySelectorAll('.plot[data-drawn]').length >= 1")
    page.shot("compare_chosen")


def test_open_a_study(site, page):
    base, made = site
    page.goto(base + "/studies")
    page.click(f"text={made['tune']['study']}")
    page.wait_for_function("document.querySelectorAll('.plot[data-drawn]').length >= 4",
                           timeout=60_000)  # fmt: skip
    assert page.locator("#trials tr").count() == 4  # header + 3 trials
    page.shot("study_open")


def test_upload_a_csv_and_train_on_it(site, page, tmp_path):
    base, _ = site
    n = 30
    nodes = tmp_path / "nodes.csv"
    edges = tmp_path / "edges.csv"
    nodes.write_text("id,f1,f2,label\n" + "".join(f"n{i},{i % 3},{i % 5},{'ab'[i % 2]}\n"
                                                   for i in range(n)))  # fmt: skip
    edges.write_text("src,dst\n" + "".join(f"n{i},n{(i + 2) % n}\n" for i in range(n)))
    page.goto(base + "/data")
    page.fill("#upload-name", "browser_graph")
    page.set_input_files("#upload-files", [str(nodes), str(edges)])
    page.click("#upload-button")
    page.wait_for_selector("form.train-form[data-dataset=browser_graph]")
    form = page.locator("form.train-form[data-dataset=browser_graph]")
    form.locator("input[name=epochs]").fill("10")
    form.locator("button").click()
    page.wait_for_selector("#job[data-state]", timeout=TRAIN_S)
    assert page.get_attribute("#job", "data-state") == "done", page.inner_text("#job")
    page.shot("upload_trained")


def test_a_chinese_request_is_answered_in_chinese(site, page):
    base, _ = site
    page.goto(base + "/chat")
    page.fill("#chat-text", "用 GCN 在 karate 上训练 20 轮")
    page.click("#chat-send")
    page.wait_for_selector("#job .plan", timeout=120_000)
    assert "epochs=20" in page.inner_text("#job .plan")
    page.wait_for_selector("#job[data-state]", timeout=TRAIN_S)
    assert page.get_attribute("#job", "data-state") == "done", page.inner_text("#job")
    reply = page.inner_text("#job .reply")
    assert any("\u4e00" <= ch <= "\u9fff" for ch in reply), reply  # the explanation is Chinese
    page.shot("chat_zh")
