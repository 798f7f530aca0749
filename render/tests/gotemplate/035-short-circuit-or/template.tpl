{{ or .name .nope.deeper }}
