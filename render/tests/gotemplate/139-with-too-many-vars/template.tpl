{{ with $a, $b := .list }}{{ end }}
