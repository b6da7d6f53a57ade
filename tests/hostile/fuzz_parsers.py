"""Coverage-guided fuzzing (atheris, libFuzzer) of the parsers that read untrusted bytes.

The first byte of each input picks the parser (profile loader, template loader, campaign CSV
reader, ``.cube`` reader, safety rules; see ``parsers.py``), the rest is its input. The corpus
starts from real, valid inputs of each kind. A crash is any exception that is not a
``BrandStudioError`` (libFuzzer prints it and exits non-zero); an input that runs past
``-timeout`` seconds is a hang.

    python tests/hostile/fuzz_parsers.py CORPUS_DIR -max_total_time=60 -timeout=20
    python tests/hostile/fuzz_parsers.py crash-<sha1>       # replay one saved input alone

``tests/hostile/test_fuzz.py`` runs it for a bounded time in the suite (``BRANDSTUDIO_FUZZ_SECONDS``).
"""

from __future__ import annotations

import sys
import traceback
from pathlib import Path

import atheris

sys.path[:0] = [str(Path(__file__).resolve().parent), str(Path(__file__).resolve().parent.parent)]

with atheris.instrument_imports(include=["brandstudio"]):
    import parsers

    from brandstudio.errors import BrandStudioError

KINDS = sorted(parsers.PARSERS)


def write_seeds(corpus: Path) -> None:
    """The valid inputs of every kind, each behind the byte that selects its parser."""
    corpus.mkdir(parents=True, exist_ok=True)
    for kind, inputs in parsers.seeds().items():
        for i, data in enumerate(inputs):
            (corpus / f"seed-{kind}-{i}").write_bytes(bytes([KINDS.index(kind)]) + data)


def test_one_input(data: bytes) -> None:
    if not data:
        return
    parse = parsers.PARSERS[KINDS[data[0] % len(KINDS)]]
    try:
        parse(data[1:])
    except BrandStudioError:
        pass  # a clear refusal is the contract
    except SystemExit as exc:
        # libFuzzer reports an exit inside the target only as "fuzz target exited", without a
        # traceback; as an ordinary exception atheris prints where it came from. (Ctrl-C is
        # left alone: it stops a run by hand, it is not a finding.)
        where = "".join(traceback.format_exception(exc))
        raise RuntimeError(f"SystemExit inside the parser: {exc!r}\n{where}") from exc


def main() -> None:
    corpus = next((Path(a) for a in sys.argv[1:] if not a.startswith("-")), None)
    if corpus is not None and not corpus.is_file():  # a file is one input to replay, not a corpus
        write_seeds(corpus)
    atheris.Setup(sys.argv, test_one_input)
    try:
        atheris.Fuzz()
    finally:
        parsers.scratch().close()


if __name__ == "__main__":
    main()
