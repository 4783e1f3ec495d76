"""What the notebooks import: the robust versions of what the learner writes, and the tutorial's tooling.

Subpackages, from the bottom up; a module imports only from its own layer or the layers below it:

- `config`, `errors`, `files`, `learners_code`, `polling`: every setting, errors that say what to do, writes
  that never leave half a file, where the learner's own code is in a traceback, and the one wait helper.
- `data`: where readings come from and what a message is (the openSenseMap client, step 1's dataset, the
  area, the message contract, the readings file).
- `rules`: what the readings mean (the alert rule in event time, daily means, sensor status, the plausibility
  review).
- `streaming`: Kafka in the notebooks (producer and consumer helpers, topics, consumer groups, latency, the
  Quix Streams pipeline of step 4 and its instances).
- `views`: maps and plots.
- `learning`: the learner's tasks, the checks that answer them, hints and the quiz.

Beside them, for running the tutorial rather than learning from it: `brokers` (the embedded broker and real
Apache Kafka on the JVM) and `classroom` (`make lab`, `make check`, `make launch-links`, `make broker-dies`),
which may import any layer.
"""
