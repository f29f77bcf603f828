-- Claim one item by id. ARGV: [2] id, [3] agent, [4] lease ms.
return do_claim(ARGV[2], ARGV[3], tonumber(ARGV[4]), now_us())
