{{ printf "%s-%s" .name .image.tag }}
{{ printf "%d" 42 }} {{ printf "%5d|%-5d|%05d" 42 42 42 }} {{ printf "%x %X %o %b %c %q %U" 255 255 8 5 65 65 65 }}
{{ printf "%v %v %v" .replicas .ratio .big }}
{{ printf "%f %.2f %5.2f %e %g %G" .ratio .ratio .ratio .big .big .small }}
{{ printf "%t %v" true .disabled }}
{{ printf "%q %v %s" .name .labels .list }}
{{ printf "%x %X" "hi" "hi" }}
{{ printf "%d" .replicas }}
{{ printf "%s" 3 }} {{ printf "%d" "x" }} {{ printf "%d" .nothing }}
{{ printf "%s %s" "only" }} {{ printf "%s" "a" "extra" 3 }}
{{ printf "%%" }} {{ printf "%v" .nums }} {{ printf "%d" .nums }} {{ printf "%s" .mixed }}
{{ printf "%6.2f|%-8s|%8s|%+d|% d" 3.14159 "ab" "ab" 5 5 }}
{{ printf "%T %T %T %T %T" 1 1.5 "s" .list .labels }}
{{ printf "%.3s|%.0f|%.1e|%.3g" "abcdef" 2.5 12345.678 12345.678 }}
{{ printf "%v|%s" .nothing .nothing }}
{{ printf "%08.3f|%+.2e|%x" -3.14159 12345.0 -255 }}
