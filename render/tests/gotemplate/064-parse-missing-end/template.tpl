{{ if .x }}
foo
