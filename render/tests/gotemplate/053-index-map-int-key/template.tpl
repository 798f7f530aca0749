{{ index .labels 1 }}
