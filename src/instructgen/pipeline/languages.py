"""Language detection for the report's profile in a child process, fed while the write pass goes on.

    worker = LanguageWorker()          # python -m instructgen.pipeline.languages
    worker.submit(texts)               # returns at once; a thread writes the batch to the child
    languages = worker.finish()        # every batch's languages, in order

langdetect costs up to ~15 ms a text, so a 20,000-record sample is tens of seconds of CPU: in a child
process it runs beside the pass instead of after it. A plain subprocess, not multiprocessing: spawn
re-imports the caller's main script (which may be stdin, a notebook, or a script without a
`__main__` guard). If the child cannot start or fails, the texts are detected here: the same answers.
"""

from __future__ import annotations

import os
import queue
import subprocess
import sys
import threading
from pathlib import Path

import orjson

DETECTOR = "script+langdetect"  # the curate stage's default detector


def detect_languages(texts: list[str]) -> list[str]:
    from ..curate.langid import get_detector

    detector = get_detector(DETECTOR, ())
    return [detector.detect(t) or "unknown" for t in texts]


class LanguageWorker:
    def __init__(self) -> None:
        self.sent: list[list[str]] = []
        self.answers: list[list[str]] = []
        self.outbox: queue.Queue = queue.Queue()
        try:
            self.child = subprocess.Popen([sys.executable, "-m", __name__], stdin=subprocess.PIPE,
                                          stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=_child_env())
        except OSError:
            self.child = None
            return
        self.threads = [threading.Thread(target=self._send, daemon=True),
                        threading.Thread(target=self._receive, daemon=True)]
        for t in self.threads:
            t.start()

    def submit(self, texts: list[str]) -> None:
        self.sent.append(texts)
        if self.child is not None:
            self.outbox.put(texts)

    def finish(self) -> list[str]:
        return [lang for batch in self.finish_batches() for lang in batch]

    def finish_batches(self) -> list[list[str]]:
        """The languages of each batch submitted, in order."""
        if self.child is not None:
            self.outbox.put(None)
            for t in self.threads:
                t.join()
            self.child.wait()
        if self.child is None or self.child.returncode != 0 or len(self.answers) != len(self.sent):
            self.answers = [detect_languages(texts) for texts in self.sent]
        return self.answers

    def close(self) -> None:
        if self.child is not None and self.child.poll() is None:
            self.child.kill()
            self.child.wait()

    def _send(self) -> None:
        try:
            while (texts := self.outbox.get()) is not None:
                self.child.stdin.write(orjson.dumps(texts) + b"\n")
                self.child.stdin.flush()
        except (OSError, TypeError):  # the child is gone, or a text orjson cannot write: detected here
            pass
        finally:
            try:
                self.child.stdin.close()
            except OSError:
                pass

    def _receive(self) -> None:
        for line in self.child.stdout:
            self.answers.append(orjson.loads(line))


def _child_env() -> dict[str, str]:
    """This environment, with the instructgen the parent runs first on the child's path."""
    here = str(Path(__file__).resolve().parents[2])
    return {**os.environ, "PYTHONPATH": os.pathsep.join([here, *filter(None, [os.environ.get("PYTHONPATH")])])}


def main() -> None:
    out = sys.stdout.buffer
    for line in sys.stdin.buffer:
        out.write(orjson.dumps(detect_languages(orjson.loads(line))) + b"\n")
        out.flush()


if __name__ == "__main__":
    main()
