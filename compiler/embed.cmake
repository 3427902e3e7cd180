# embed.cmake — writes binary file IN as a C array NAME (and NAME_len) to OUT.
#   cmake -DIN=file.bc -DOUT=file.c -DNAME=symbol -P embed.cmake
file(READ "${IN}" hex HEX)
string(LENGTH "${hex}" n)
math(EXPR len "${n} / 2")
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," body "${hex}")
file(WRITE "${OUT}.tmp" "/* generated from ${IN} by embed.cmake */\nextern const unsigned char ${NAME}[];\nextern const unsigned long ${NAME}_len;\nconst unsigned char ${NAME}[] = {${body}};\nconst unsigned long ${NAME}_len = ${len};\n")
file(RENAME "${OUT}.tmp" "${OUT}")
