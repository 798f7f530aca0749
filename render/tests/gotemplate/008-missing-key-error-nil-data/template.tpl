{{ $x := .nope }}
