{{ .Caps.Name }} {{ .Caps.KubeVersion.Version }} {{ .Caps.KubeVersion.GitVersion }} {{ .Caps.KubeVersion }}
{{ .Caps.APIVersions.Has "apps/v1" }} {{ .Caps.APIVersions.Has "batch/v2" }} {{ if .Caps.APIVersions.Has "v1" }}core{{ end }}
{{ .Caps.Greet "you" 2 }}|{{ 1 | .Caps.Greet "x" }}|{{ eq .Caps .Caps }} {{ with .Caps }}{{ .Name }}{{ end }}
{{ $c := .Caps }}{{ $c.KubeVersion.Major }}.{{ $c.KubeVersion.Minor }} {{ printf "%v %s" .Caps.Name .Caps.KubeVersion.Version }}
