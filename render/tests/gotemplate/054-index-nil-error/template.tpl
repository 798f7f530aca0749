{{ index .nope 1 }}
