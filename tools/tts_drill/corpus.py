"""Realistic drill corpus: sentences a TTS service speaks in production, never twice the same.

Customer service, notifications, numbers, dates and order numbers, 4 to 25 words each (words are
whitespace-separated tokens: "$1,234.50" and "4821937" count as one). Every sentence carries a
reference number that is unique per request within a run (order, ticket, invoice, booking...),
woven into the text, so that no audio cache can answer it: a drill or a capacity measurement with
this corpus always pays for a real synthesis.

Deterministic: the text of request ``seq`` depends only on (seed, seq). Runs with different seeds
get different sentences (and reference numbers); a run repeated with the same seed sends the same
texts, so pass a fresh seed per run (the load generator defaults to one taken from the clock) when
a previous run's texts may still sit in a cache.

    >>> Corpus(seed=7).text(0)   # doctest: +SKIP
    'Your order number 418235 has shipped and will arrive on Tuesday, March 14.'
"""

import random

__all__ = ["Corpus", "MAX_WORDS", "MIN_WORDS", "REF_SPACE", "TEMPLATES", "sentence", "word_count"]

MIN_WORDS = 4
MAX_WORDS = 25
# Reference numbers are 6 digits: request seq of a run gets 100000 + (STRIDE * seq + offset) mod
# REF_SPACE, a bijection for seq < REF_SPACE (STRIDE is coprime with REF_SPACE): 900000 requests,
# 25 hours at 10/s, before a number repeats within one run.
REF_SPACE = 900_000
REF_BASE = 100_000
STRIDE = 7_919  # prime, does not divide 900000 = 2^5 * 3^2 * 5^5

WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September",
          "October", "November", "December")
NAMES = ("Alex", "Maria", "Chen", "Fatima", "Jonas", "Priya", "Samuel", "Olga", "Kenji", "Amara",
         "Lucas", "Ingrid", "Diego", "Hannah", "Yusuf", "Claire")
CITIES = ("Edinburgh", "Lisbon", "Chicago", "Osaka", "Nairobi", "Toronto", "Munich", "Dublin",
          "Seville", "Melbourne", "Boston", "Vienna")
ITEMS = ("wireless headphones", "coffee grinder", "winter jacket", "phone charger", "desk lamp",
         "running shoes", "blender", "backpack", "printer cartridge", "garden hose")
DEPARTMENTS = ("billing", "technical support", "sales", "returns", "accounts", "customer care")

# {ref} is the per-request unique number; the other fields are drawn from the seeded generator.
# Each template's word count stays within MIN_WORDS..MAX_WORDS whatever the fields hold (tested).
TEMPLATES = (
    # Customer service
    "Your order number {ref} has shipped and will arrive on {weekday}.",
    "Order {ref} is confirmed.",
    "Thank you for calling, your case number is {ref}.",
    "Please hold while we transfer case {ref} to {department}.",
    "Your refund of {amount} for order {ref} was issued on {date}.",
    "We are sorry, the {item} from order {ref} will be back in stock on {date}.",
    "Hello {name}, your return request {ref} has been approved, please drop the parcel at any"
    " post office before {date}.",
    "Ticket {ref} is now closed.",
    "To speak to {department} about ticket {ref}, press {digit}, or stay on the line.",
    "Your current wait time is about {minutes} minutes, your call reference is {ref}.",
    "Your payment of {amount} was received, thank you, invoice {ref} is now settled.",
    # Notifications
    "Reminder: your appointment {ref} with {name} is on {date} at {time}.",
    "Flight {ref} to {city} now departs at {time} from gate {gate}.",
    "Your parcel {ref} was delivered at {time} and left with a neighbour.",
    "Alert {ref}: unusual sign-in on your account from {city} at {time}.",
    "Booking {ref} for {count} guests in {city} is confirmed from {date}.",
    "The train {ref} to {city} is delayed by {minutes} minutes.",
    "Your verification code is {code}, request {ref}.",
    "Meeting {ref} starts at {time} in room {gate}.",
    "Good morning {name}, you have {count} new messages and one missed call, reference {ref}.",
    # Numbers, dates and amounts
    "Your balance on {date} is {amount}, statement {ref}.",
    "Account {ref} was charged {amount} on {weekday}, {date}.",
    "Invoice {ref} for {amount} is due on {date}.",
    "The temperature in {city} will reach {degrees} degrees on {weekday}, forecast {ref}.",
    "Between {date} and {date2}, meter {ref} recorded {count} hundred kilowatt hours.",
    "Your subscription {ref} renews on {date} for {amount} per month, and you can cancel it"
    " at any time from your account page.",
    "Package {ref} weighs {count} kilograms and costs {amount} to ship to {city}.",
    "Please confirm that order {ref} of {count} {item} units, for a total of {amount}, should be"
    " delivered to the {city} warehouse on {weekday}.",
)


def word_count(text):
    return len(text.split())


def _fields(rng):
    month = rng.randrange(12)
    day = rng.randint(1, 28)
    return {
        "weekday": rng.choice(WEEKDAYS),
        "date": f"{MONTHS[month]} {day}",
        "date2": f"{MONTHS[(month + 1) % 12]} {rng.randint(1, 28)}",
        "time": f"{rng.randint(1, 12)}:{rng.choice(('00', '15', '30', '45', '05', '50'))}"
                f" {rng.choice(('a.m.', 'p.m.'))}",
        "name": rng.choice(NAMES),
        "city": rng.choice(CITIES),
        "item": rng.choice(ITEMS),
        "department": rng.choice(DEPARTMENTS),
        "amount": f"${rng.randint(1, 2500):,}.{rng.randrange(100):02d}",
        "digit": rng.choice(("one", "two", "three", "four", "five")),
        "minutes": rng.randint(2, 45),
        "count": rng.randint(2, 12),
        "gate": f"{rng.choice('ABCDE')}{rng.randint(1, 40)}",
        "degrees": rng.randint(-5, 35),
        "code": " ".join(str(rng.randrange(10)) for _ in range(6)),
    }


class Corpus:
    """text(seq) -> the sentence of request seq of a run seeded with `seed` (an int)."""

    def __init__(self, seed=0):
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise TypeError(f"seed must be an integer, got {seed!r}")
        self.seed = seed
        self._offset = random.Random(f"tts-ha-corpus:{seed}").randrange(REF_SPACE)

    def ref(self, seq):
        """The request's reference number, unique among seq 0..REF_SPACE-1 of this seed."""
        if isinstance(seq, bool) or not isinstance(seq, int) or seq < 0:
            raise ValueError(f"seq must be a non-negative integer, got {seq!r}")
        return REF_BASE + (STRIDE * seq + self._offset) % REF_SPACE

    def text(self, seq):
        ref = self.ref(seq)
        # str seeds hash with SHA-512 in random.Random: the same on every run and platform.
        rng = random.Random(f"tts-ha-corpus:{self.seed}:{seq}")
        template = rng.choice(TEMPLATES)
        return template.format(ref=ref, **_fields(rng))

    __call__ = text


def sentence(seed, seq):
    """The sentence of request seq in a run seeded with seed."""
    return Corpus(seed).text(seq)
