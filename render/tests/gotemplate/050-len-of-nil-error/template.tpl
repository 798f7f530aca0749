{{ len .nope }}
