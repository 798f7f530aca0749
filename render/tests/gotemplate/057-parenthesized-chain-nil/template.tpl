{{ (index .labels "nope").x }}
