"""Maps and plots."""
