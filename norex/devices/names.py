"""Device names: a random two-word name when the customer gives none (so no personal label need exist), or a
label the customer chooses, as a person would type it ("Anna's iPhone").

A name lives only in the control plane's database; the server knows public keys and addresses only.
"""

from __future__ import annotations

import secrets
import unicodedata

from norex.errors import UsageError

MAX_LENGTH = 64

ADJECTIVES = [
    "amber",
    "azure",
    "brave",
    "brisk",
    "calm",
    "clever",
    "cosmic",
    "crisp",
    "daring",
    "deft",
    "eager",
    "fair",
    "fancy",
    "fleet",
    "frank",
    "gentle",
    "glad",
    "golden",
    "grand",
    "happy",
    "hardy",
    "honest",
    "humble",
    "jolly",
    "keen",
    "kind",
    "lively",
    "lucky",
    "mellow",
    "merry",
    "mighty",
    "misty",
    "modest",
    "nimble",
    "noble",
    "plucky",
    "polite",
    "proud",
    "quick",
    "quiet",
    "rapid",
    "ready",
    "royal",
    "rustic",
    "sharp",
    "shiny",
    "silent",
    "silver",
    "smart",
    "snowy",
    "solid",
    "spry",
    "steady",
    "sunny",
    "swift",
    "tidy",
    "tranquil",
    "trusty",
    "vivid",
    "warm",
    "wise",
    "witty",
    "young",
    "zesty",
]

NOUNS = [
    "alpaca",
    "badger",
    "beaver",
    "bison",
    "bobcat",
    "cedar",
    "comet",
    "condor",
    "coral",
    "cougar",
    "crane",
    "dingo",
    "dolphin",
    "eagle",
    "falcon",
    "ferret",
    "finch",
    "fjord",
    "fox",
    "gecko",
    "glacier",
    "hare",
    "hawk",
    "heron",
    "ibis",
    "jaguar",
    "kestrel",
    "koala",
    "lark",
    "lemur",
    "lynx",
    "magpie",
    "maple",
    "marten",
    "meadow",
    "moose",
    "narwhal",
    "newt",
    "ocelot",
    "orca",
    "osprey",
    "otter",
    "owl",
    "panda",
    "pelican",
    "pine",
    "puffin",
    "quail",
    "raven",
    "robin",
    "salmon",
    "seal",
    "sparrow",
    "spruce",
    "stork",
    "swan",
    "tapir",
    "tiger",
    "toucan",
    "trout",
    "walrus",
    "wombat",
    "yak",
]


def random_name(taken: set[str]) -> str:
    """A two-word name such as "Tidy Owl" that none of the customer's devices has yet."""
    for _ in range(1000):
        name = f"{secrets.choice(ADJECTIVES).title()} {secrets.choice(NOUNS).title()}"
        if name not in taken:
            return name
    raise UsageError("no free random device name is left; give the device a name")


def check_label(label: str) -> str:
    """A customer's label for a device, 1 to 64 printable characters (spaces inside are fine); else UsageError.

    Leading and trailing spaces are dropped. Control and format characters (newlines, tabs, bidirectional
    overrides), unassigned code points and surrogates are refused, so a label can never break a line of output
    or hide what it says.
    """
    text = unicodedata.normalize("NFC", label).strip(" ")
    if not text:
        raise UsageError("a device name must have 1 to 64 characters")
    if len(text) > MAX_LENGTH:
        raise UsageError(f"a device name must have at most {MAX_LENGTH} characters, not {len(text)}")
    for character in text:
        category = unicodedata.category(character)
        if category.startswith("C") or category in ("Zl", "Zp") or (category == "Zs" and character != " "):
            raise UsageError(
                f"a device name may not contain {unicodedata.name(character, 'control character').lower()} "
                f"(U+{ord(character):04X}); use printable characters"
            )
    return text
