"""Every code has plain words, and every word has its French translation."""

from __future__ import annotations

import pytest

from kiosk.i18n import translation
from kiosk.models import FileVerdict, Reason, TreeVerdict
from kiosk.wording import FILE_WORDS, REASON_WORDS, TREE_WORDS, Wording


def test_every_code_has_words():
    assert set(REASON_WORDS) == set(Reason)
    assert set(TREE_WORDS) == set(TreeVerdict)
    assert set(FILE_WORDS) == set(FileVerdict)


@pytest.mark.parametrize(
    "message", [*REASON_WORDS.values(), *TREE_WORDS.values(), *FILE_WORDS.values()]
)
def test_french_catalogue_is_complete(message):
    assert translation("kiosk", "fr").gettext(message) != message or message == "VIRUS"


def test_unknown_codes_from_peers_are_shown_as_they_are():
    assert Wording("fr").reason("brand_new_code") == "brand_new_code"
    assert Wording("en").reason(Reason.ZIP64) == "an archive format the antivirus cannot open"
