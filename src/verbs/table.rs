//! Plain-text tables for the read verbs' human output (`ps`, `history`):
//! columns as wide as their widest cell, so long service and image names
//! (`neutron-openvswitch-agent`) neither overflow nor shift the columns
//! after them. JSON output does not come here.

/// Lines of a table: each column as wide as its widest cell, the last
/// one not padded (no trailing blanks).
pub fn table(header: &[&str], rows: &[Vec<String>]) -> Vec<String> {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let header: Vec<String> = header.iter().map(|h| h.to_string()).collect();
    std::iter::once(&header)
        .chain(rows)
        .map(|row| {
            let last = row.len().saturating_sub(1);
            let cells: Vec<String> = row
                .iter()
                .zip(&widths)
                .enumerate()
                .map(|(i, (cell, width))| match i == last {
                    true => cell.clone(),
                    false => format!("{cell:<width$}"),
                })
                .collect();
            cells.join("  ")
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_fit_their_widest_cell_and_lines_end_without_blanks() {
        let rows = vec![
            vec![
                "a".to_string(),
                "neutron-openvswitch-agent".to_string(),
                "x".to_string(),
            ],
            vec!["bb".to_string(), "-".to_string(), "y".to_string()],
        ];
        assert_eq!(
            table(&["N", "SERVICE", "IMAGE"], &rows),
            [
                "N   SERVICE                    IMAGE",
                "a   neutron-openvswitch-agent  x",
                "bb  -                          y",
            ]
        );
    }
}
