{{ printf "%s|%v" html (not) }}
