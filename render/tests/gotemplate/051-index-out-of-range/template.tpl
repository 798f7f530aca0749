{{ index .four 4 }}
