"""An instructor's commands: make lab, make check, make launch-links, make broker-dies."""
