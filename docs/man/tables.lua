-- The tables of docs/config.md and docs/runner.md as definition lists in the
-- man pages: a key per entry, then its other columns ("required: yes;
-- default: ...") and the last one (its meaning) as the text. A man page's
-- table cannot break a long cell across pages, and a terminal is too narrow
-- for four columns of prose; a list reads at any width.
local function cell_inlines(cell)
  local out = pandoc.List()
  for _, block in ipairs(cell.contents) do
    if block.content then out:extend(block.content) end
  end
  return out
end

function Table(tbl)
  local names = {}
  for i, cell in ipairs(tbl.head.rows[1].cells) do
    names[i] = pandoc.utils.stringify(cell.contents)
  end
  local items = pandoc.List()
  for _, body in ipairs(tbl.bodies) do
    for _, row in ipairs(body.body) do
      local n = #row.cells
      local term = cell_inlines(row.cells[1])
      local facts = pandoc.List()
      for i = 2, n - 1 do
        local value = cell_inlines(row.cells[i])
        if #value > 0 then
          if #facts > 0 then facts:extend({pandoc.Str(";"), pandoc.Space()}) end
          facts:extend({pandoc.Emph({pandoc.Str(names[i] .. ":")}), pandoc.Space()})
          facts:extend(value)
        end
      end
      local blocks = pandoc.List()
      if #facts > 0 then blocks:insert(pandoc.Para(facts)) end
      if n > 1 then blocks:insert(pandoc.Para(cell_inlines(row.cells[n]))) end
      items:insert({term, {blocks}})
    end
  end
  return pandoc.DefinitionList(items)
end
