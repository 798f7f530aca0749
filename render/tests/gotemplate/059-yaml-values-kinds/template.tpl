{{ .int }} {{ .neg }} {{ .float }} {{ .exp }} {{ .str }} {{ .yes }} {{ .octalish }} {{ .huge }} {{ .tiny }}
{{ printf "%v %T" .int .int }}
