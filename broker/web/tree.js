// tree.js - the retained messages' topic tree: topics from /api/v1/retained
// split on '/' into levels, each level a <details> that renders its children
// only when first opened (a broker can hold many thousands of topics), and
// that stays open across refreshes. Topic names are attacker-chosen: they
// only ever reach the page as textContent.
'use strict';

const PetrelTree = (() => {
  // node: {name, path, children: Map(name -> node), retained: {bytes, qos} | null,
  //        topics: retained topics at or below it, bytes: their sizes' sum}
  function newNode(name, path) {
    return { name, path, children: new Map(), retained: null, topics: 0, bytes: 0 };
  }

  // Builds the tree of a list of {topic, bytes, qos}.
  function build(items) {
    const root = newNode('', '');
    for (const it of items) {
      const levels = String(it.topic).split('/');
      let node = root;
      const bytes = Number(it.bytes) || 0;
      node.topics++;
      node.bytes += bytes;
      for (let i = 0; i < levels.length; i++) {
        let child = node.children.get(levels[i]);
        if (!child) {
          child = newNode(levels[i], levels.slice(0, i + 1).join('/'));
          node.children.set(levels[i], child);
        }
        node = child;
        node.topics++;
        node.bytes += bytes;
      }
      node.retained = { bytes, qos: it.qos };
    }
    return root;
  }

  function el(tag, cls, text) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  }

  class Tree {
    // container: where the tree goes; formatBytes(n): size text;
    // onDelete(topic): called by a retained message's delete button.
    constructor(container, formatBytes, onDelete) {
      this.container = container;
      this.formatBytes = formatBytes;
      this.onDelete = onDelete;
      this.open = new Set();   // paths of the levels the user opened
    }

    render(items) {
      const root = build(items);
      const list = el('ul', 'tree-level');
      this.fill(list, root);
      this.container.replaceChildren(list);
      return root.topics;
    }

    // Appends the children of `node`, sorted by name, to the <ul> `list`.
    fill(list, node) {
      const names = [...node.children.keys()].sort();
      for (const name of names) list.appendChild(this.item(node.children.get(name)));
    }

    item(node) {
      const li = el('li');
      li.dataset.topic = node.path;   // an attribute value, never markup
      const label = el('span', 'seg', node.name === '' ? '(empty)' : node.name);
      if (node.name === '') label.classList.add('blank');
      const info = el('span', 'meta');
      if (node.retained) {
        info.appendChild(el('span', 'badge', `QoS ${node.retained.qos}`));
        info.appendChild(el('span', 'size', this.formatBytes(node.retained.bytes)));
        if (this.onDelete) {
          const del = el('button', 'link delete', 'delete');
          del.type = 'button';
          del.setAttribute('aria-label', `Delete the retained message of ${node.path}`);
          // Inside a <summary> a click would also open or close the level.
          del.addEventListener('click', (e) => { e.preventDefault(); this.onDelete(node.path); });
          info.appendChild(del);
        }
      }
      if (node.children.size === 0) {
        const row = el('div', 'leaf');
        row.title = node.path;
        row.append(label, info);
        li.appendChild(row);
        return li;
      }
      const below = node.topics - (node.retained ? 1 : 0);
      info.appendChild(el('span', 'count', `${below} topic${below === 1 ? '' : 's'}`));
      const details = el('details');
      const summary = el('summary');
      summary.title = node.path;
      summary.append(label, info);
      details.appendChild(summary);
      const children = el('ul', 'tree-level');
      details.appendChild(children);
      let filled = false;
      const fillOnce = () => {
        if (!filled) { filled = true; this.fill(children, node); }
      };
      details.addEventListener('toggle', () => {
        if (details.open) { this.open.add(node.path); fillOnce(); } else this.open.delete(node.path);
      });
      if (this.open.has(node.path)) { fillOnce(); details.open = true; }
      li.appendChild(details);
      return li;
    }
  }

  return { Tree, build };
})();
