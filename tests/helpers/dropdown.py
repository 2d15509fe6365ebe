"""Pick an option of a searchable ``dcc.Dropdown`` by typing into its search box, as a user does.

A user opens the dropdown, sees its search box take the cursor, and then types. A script that types right after
the click can outrun that: until the dropdown's own animation-frame callback moves focus from the trigger button
to the search box, keys land on the button, and a key pressed on the button and released on the search box is
dropped (the trigger adds a key on its keyup, the search box on its input event). Under a loaded browser this
turned "team=payments" into "team=paymnts". So: open, wait for the search box to have focus, type, and check
that the box holds exactly what was typed before picking the option.
"""

from __future__ import annotations

from playwright.sync_api import Page

#: the search box of an open dropdown; it sits in the dropdown's own wrapper (the popover is portalled there)
_SEARCH = ".dash-dropdown-wrapper:has(#{id}) input.dash-dropdown-search"


def pick_by_search(page: Page, dropdown_id: str, option: str, *, key_delay_ms: float = 0) -> None:
    """Open dropdown ``dropdown_id``, type ``option`` into its search box and click the option of that name.

    ``key_delay_ms`` spaces the keys as a slow typist would (0: as fast as the browser takes them).
    """
    page.click(f"#{dropdown_id}")
    search = page.locator(_SEARCH.format(id=dropdown_id))
    search.wait_for(state="visible")
    page.wait_for_function("el => document.activeElement === el", arg=search.element_handle())
    page.keyboard.type(option, delay=key_delay_ms)
    typed = search.input_value()
    assert typed == option, f"the search box of #{dropdown_id} holds {typed!r} after typing {option!r}"
    page.get_by_role("option", name=option, exact=True).click()
