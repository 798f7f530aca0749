{{- define "inc.redefined" }}second-from-later-file{{ end }}
