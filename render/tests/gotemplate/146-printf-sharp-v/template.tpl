{{ printf "%#v|%#v|%#v|%#v|%#v|%#v" .mixed .labels 1.0 1e6 .name true }} {{ printf "%#v %+v %+d %#x" .nothing 5 5 .list }}
