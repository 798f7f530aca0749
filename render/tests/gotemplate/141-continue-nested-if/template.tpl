{{ range $i := 5 }}{{ if eq (len (slice "aaaa" 0 $i)) 2 }}{{ continue }}{{ end }}{{ $i }}{{ end }}
