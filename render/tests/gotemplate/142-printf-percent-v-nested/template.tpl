{{ printf "%v|%+v|%s|%q" .mixed .labels .nested .list }}
