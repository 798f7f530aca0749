{{ print .Caps.KubeVersion }} {{ printf "%v|%s|%T" .Caps.KubeVersion .Caps.KubeVersion .Caps.KubeVersion }}
