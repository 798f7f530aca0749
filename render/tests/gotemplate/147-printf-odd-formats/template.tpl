{{ printf "%" }}|{{ printf "%." 1 }}|{{ printf "%-" }}|{{ printf "%5" 1 }}|{{ printf "%.*f" 2 3.14159 }}|{{ printf "%*d" "x" 1 }}|{{ printf "%!" 1 }}|{{ printf "%z" 1 }}|{{ printf "%é" 1 }}
