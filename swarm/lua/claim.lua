-- Claim one item by id. ARGV: [3] id, [4] agent, [5] lease ms.
return do_claim(ARGV[3], ARGV[4], tonumber(ARGV[5]), now_us())
