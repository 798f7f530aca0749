{{ printf "%s %s %s %s %s" .name .name .name .name .nope.deeper }}
