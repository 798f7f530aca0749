{{ upper .nope }}
