"""Screenshot of groupvit-app for the docs: the shipped model on val scene 000001 in headless Chromium.

    python tools/app_screenshot.py --out docs/images/app.png

Needs gradio, selenium, /usr/bin/chromium and /usr/bin/chromedriver (tests/test_app_browser.py
drives the same page and checks what it shows).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from groupvit.app.examples import SYNTHETIC_VOCABULARY, write_examples
from groupvit.cli.app import parse_args, start

FLAGS = (
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
)  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, default=Path("docs/images/app.png"))
    parser.add_argument("--size", default="1400,1250", help="window width,height in pixels")
    args = parser.parse_args()
    page = start(parse_args(["--port", "0"]), block=False)
    scene = write_examples(Path(tempfile.mkdtemp()), count=2)[1].path
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for flag in (*FLAGS, f"--window-size={args.size}", f"--user-data-dir={tempfile.mkdtemp()}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
    try:
        driver.get(page.local_url)
        WebDriverWait(driver, 120).until(lambda d: d.find_elements(By.ID, "run"))
        driver.find_element(By.CSS_SELECTOR, "#image-file input[type=file]").send_keys(str(scene))
        box = driver.find_element(By.CSS_SELECTOR, "#prompt textarea")
        box.clear()
        box.send_keys(SYNTHETIC_VOCABULARY)
        driver.find_element(By.ID, "run").click()
        WebDriverWait(driver, 120).until(lambda d: "found" in d.find_element(By.ID, "status").text)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(args.out))
    finally:
        driver.quit()
        page.close()
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
