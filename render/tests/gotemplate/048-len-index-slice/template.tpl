{{ len .list }} {{ len .labels }} {{ len .name }} {{ len .emptyList }}
{{ index .list 1 }} {{ index .labels "app" }} {{ index .nested "a" "b" "c" }} {{ index .ports 1 "name" }}
[{{ index .labels "nope" }}] {{ index "abc" 1 }}
{{ slice .list 1 }} {{ slice .list 1 2 }} {{ slice .name 1 3 }} {{ slice .list }} {{ slice .list 0 3 3 }}
