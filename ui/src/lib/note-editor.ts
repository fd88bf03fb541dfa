// CodeMirror for the note body. Kept in its own module so the window loads it (and the
// Markdown language) only when the first note is opened: the list shows sooner and the window
// stays smaller when nothing is being edited (BENCHMARKS.md, "Desktop app").
import { EditorView, basicSetup } from 'codemirror';
import { markdown } from '@codemirror/lang-markdown';
import { Annotation, Compartment, EditorState } from '@codemirror/state';

export type { EditorView };

/**
 * Above this size a note is edited as plain text. Markdown is parsed from the top of the note
 * down to what is on screen; in a note of megabytes that work runs in 100 ms slices between
 * keystrokes, and typing lags (BENCHMARKS.md). Editors do the same for big files (VS Code's
 * large-file mode).
 */
export const PLAIN_TEXT_ABOVE = 256 * 1024;

/** The language of the note: Markdown, or none for a large note. */
const language = new Compartment();
const markdownLanguage = markdown();
const languageFor = (size: number) => (size > PLAIN_TEXT_ABOVE ? [] : markdownLanguage);

/** Whether the text can be edited: not in the Trash (restore first, as for the title). */
const access = new Compartment();
const EDITABLE: never[] = [];
const READ_ONLY = [EditorState.readOnly.of(true), EditorView.editable.of(false)];

/** Marks a change that put the store's text in the editor: not an edit to save back. */
const fromStore = Annotation.define<boolean>();

/** A Markdown editor in `parent`; `onEdit` runs after each change the user makes. */
export function createNoteEditor(parent: HTMLElement, onEdit: () => void): EditorView {
  return new EditorView({
    parent,
    state: EditorState.create({
      doc: '',
      extensions: [
        basicSetup,
        language.of(languageFor(0)),
        access.of(EDITABLE),
        EditorView.lineWrapping,
        EditorView.contentAttributes.of({ 'aria-label': 'Note text', 'data-testid': 'editor-body' }),
        EditorView.updateListener.of((update) => {
          if (update.docChanged && !update.transactions.some((t) => t.annotation(fromStore))) onEdit();
        }),
      ],
    }),
  });
}

/** Shows `text`, keeping the cursor where it was as far as the new text allows. */
export function replaceText(view: EditorView, text: string): void {
  const head = Math.min(view.state.selection.main.head, text.length);
  view.dispatch({
    changes: { from: 0, to: view.state.doc.length, insert: text },
    selection: { anchor: head },
    annotations: fromStore.of(true),
    // Only when the kind changes: the same extension again would still restart the parse.
    effects:
      language.get(view.state) === languageFor(text.length) ? [] : language.reconfigure(languageFor(text.length)),
  });
}

/** Locks or unlocks the text (a note in the Trash is read-only until restored). */
export function setReadOnly(view: EditorView, readOnly: boolean): void {
  const wanted = readOnly ? READ_ONLY : EDITABLE;
  if (access.get(view.state) !== wanted) view.dispatch({ effects: access.reconfigure(wanted) });
}
