"""groupvit-app in a real browser: headless Chromium through Selenium against the app on localhost.

Uploads a file that is not an image and sends an empty vocabulary (messages on the page, the server
keeps serving), then a val scene with the synthetic class list; the labels and pixel shares shown,
the overview picture and the downloaded label map and JSON must equal the library's own result.
Skipped, with the reason, where Chromium, its driver, Selenium or Gradio is missing
(``apt-get install chromium chromium-driver``; ``pip install -r requirements-dev.txt``).
"""

import importlib.util
import io
import json
import shutil
import tempfile
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import groupvit
from groupvit.app.examples import SYNTHETIC_VOCABULARY, write_examples
from groupvit.cli.records import summary_record
from groupvit.preprocess import EvalTransform
from groupvit.visualization import render

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
CLASSES = ["background", *SYNTHETIC_VOCABULARY.split(", ")]
BROWSER_FLAGS = (
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync", "--window-size=1400,1100",
)  # fmt: skip
TIMEOUT = 120  # seconds for one answer of the page (two shared CPU cores: the first call loads the tokenizer)


def _missing() -> str | None:
    for module, what in (("gradio", "gradio (pip install 'groupvit[app]')"), ("selenium", "selenium")):
        if importlib.util.find_spec(module) is None:
            return f"{what} is not installed"
    for path, what in ((CHROMIUM, "chromium"), (CHROMEDRIVER, "chromium-driver")):
        if not Path(path).is_file():
            return f"{path} not found: apt-get install {what}"
    return None


pytestmark = [pytest.mark.slow, pytest.mark.skipif(_missing() is not None, reason=str(_missing()))]


@pytest.fixture(scope="module")
def server():
    from groupvit.cli.app import parse_args, start

    page = start(parse_args(["--port", "0"]), block=False)
    yield page
    page.close()


@pytest.fixture(scope="module")
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in BROWSER_FLAGS:
        options.add_argument(flag)
    profile = tempfile.mkdtemp(prefix="groupvit-chromium-")
    options.add_argument(f"--user-data-dir={profile}")
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    yield driver
    driver.quit()
    shutil.rmtree(profile, ignore_errors=True)


def _status_becomes(driver, text: str) -> str:
    """Wait until the status box holds ``text``; returns the box's text."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(driver, TIMEOUT).until(lambda d: text in d.find_element(By.ID, "status").text)
    return driver.find_element(By.ID, "status").text


def _loaded(driver, url: str) -> None:
    """Open ``url`` and wait until Gradio has rendered the page (the Segment button exists)."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get(url)
    WebDriverWait(driver, TIMEOUT).until(lambda d: d.find_elements(By.ID, "run"))
    WebDriverWait(driver, TIMEOUT).until(lambda d: "groupvit" in d.find_element(By.ID, "model-info").text)


def _fetch(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=30) as answer:
        return answer.read()


def _set_prompt(driver, text: str) -> None:
    from selenium.webdriver.common.by import By

    box = driver.find_element(By.CSS_SELECTOR, "#prompt textarea")
    box.clear()
    box.send_keys(text)


def _upload(driver, path: Path) -> None:
    from selenium.webdriver.common.by import By

    driver.find_element(By.CSS_SELECTOR, "#image-file input[type=file]").send_keys(str(path))


def _clear_upload(driver) -> None:
    from selenium.webdriver.common.by import By

    for button in driver.find_elements(By.CSS_SELECTOR, "#image-file button[aria-label='Clear']"):
        button.click()


def test_page_segments_like_the_library(server, browser, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By

    scene = write_examples(tmp_path / "scenes", count=2)[1].path  # val scene 000001 (flower, car, star)
    not_image = tmp_path / "notes.png"
    not_image.write_text("not an image")

    _loaded(browser, server.local_url)
    info = browser.find_element(By.ID, "model-info").text
    assert "groupvit_tiny_synthetic" in info and "synthetic model" in info and "3.3 M parameters" in info

    _upload(browser, not_image)  # bad request 1: the file is no image
    assert "notes.png is not an image PIL can read" in _status_becomes(browser, "not an image")
    browser.find_element(By.ID, "run").click()
    _status_becomes(browser, "notes.png is not an image")
    _clear_upload(browser)

    _upload(browser, scene)  # bad request 2: an empty vocabulary
    _set_prompt(browser, " , ")
    browser.find_element(By.ID, "run").click()
    _status_becomes(browser, "empty vocabulary: type the class names to find")

    _set_prompt(browser, SYNTHETIC_VOCABULARY)  # the good request: the server still answers
    browser.find_element(By.ID, "run").click()
    status = _status_becomes(browser, "found")
    assert "64 x 64 px" in status and "found car, flower, star" in status

    # the library's own result for the same file (what groupvit-demo computes)
    model = groupvit.create_model(
        "groupvit_tiny_synthetic", checkpoint=str(ROOT / "checkpoints" / "groupvit_tiny_synthetic.pth")
    ).eval()
    seg = groupvit.ZeroShotSegmenter(model, CLASSES[1:], bg_thresh=0.95, mode="slide", window=320, stride=160)
    image = Image.open(scene).convert("RGB")
    pixels = EvalTransform(320)(image)[None]
    labels = seg.predict_labels(pixels, output_size=(64, 64))[0]
    groups = [g[0] for g in seg.group_maps(pixels)]

    shares = browser.find_element(By.ID, "shares").text.splitlines()
    counts = torch.bincount(labels.flatten(), minlength=len(CLASSES))
    expected_rows = sorted(
        ((CLASSES[i], int(n) / labels.numel()) for i, n in enumerate(counts) if n), key=lambda r: -r[1]
    )
    assert shares[0] == "label pixel share"
    assert shares[1:] == [f"{name} {share:.1%}" for name, share in expected_rows]

    overview_src = browser.find_element(By.CSS_SELECTOR, "#overview img").get_attribute("src")
    shown = np.asarray(Image.open(io.BytesIO(_fetch(overview_src))).convert("RGB"))
    expected = render(np.asarray(image), labels, groups, CLASSES, ["overview"], min_label_area=0.01)[
        "overview"
    ]
    assert np.array_equal(shown, np.asarray(expected))  # pixel for pixel

    links = {
        Path(a.get_attribute("href")).name: a.get_attribute("href")
        for a in browser.find_elements(By.CSS_SELECTOR, "#downloads a")
    }
    assert set(links) == {"000001_labels.png", "000001.json"}
    label_map = np.asarray(Image.open(io.BytesIO(_fetch(links["000001_labels.png"]))))
    assert np.array_equal(label_map, labels.numpy())
    record = json.loads(_fetch(links["000001.json"]))
    assert record == json.loads(
        json.dumps(summary_record("000001.png", labels, groups, CLASSES, 320, "slide"))
    )

    browser.save_screenshot(str(tmp_path / "page.png"))
    assert Image.open(tmp_path / "page.png").size[0] >= 1000
