"""Where readings come from and what a message is: the openSenseMap client, step 1's dataset, the area, the contract."""
