"""The learner's tasks, the checks that answer them, hints and the quiz."""
