import pytest

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_staff_logs_in_and_sees_the_navigation(logged_in_page, live_server):
    page = logged_in_page
    # The menus are <details>: their summaries open them, with or without JavaScript.
    assert page.locator("nav summary", has_text="Networked Computers").is_visible()
    page.locator("nav summary", has_text="Updates").click()
    page.get_by_role("link", name="Automatic Update").click()
    page.wait_for_url(f"{live_server.url}/updates/automatic/")
    # Local Bootstrap is loaded: the navbar is styled dark.
    background = page.evaluate("getComputedStyle(document.querySelector('nav.navbar')).backgroundColor")
    assert background not in ("rgba(0, 0, 0, 0)", "transparent")


def test_wrong_password_shows_an_error(page, live_server, admin_user_obj):
    page.goto(f"{live_server.url}/login/")
    page.fill("#id_username", "root")
    page.fill("#id_password", "wrong")
    page.click("button[type=submit]")
    assert page.get_by_text("Please enter a correct username and password").is_visible()
