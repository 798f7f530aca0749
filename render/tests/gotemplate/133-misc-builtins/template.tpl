{{ 1 | index .list }} {{ eq "a" "b" "a" }} {{ len (index .ports 0) }} {{ with .nothing }}x{{ else }}y{{ end }}
{{ println .labels .nothing 1.5 }}{{ printf "%v" .ports }} {{ printf "%5.1f|%-7v|%7v" 3.14159 .list true }}
{{ not 0 }} {{ not "" }} {{ not .list }} {{ not .nope }} {{ and 0 .nope.x }} {{ or 1 .nope.x }}
